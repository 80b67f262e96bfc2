"""DINOv2 vision transformer as MoGe uses it (Meta's ``DinoVisionTransformer`` layout, no registers).

Written from the architecture description so that MoGe checkpoints load with their own key names:
``cls_token``, ``pos_embed``, ``mask_token``, ``patch_embed.proj``, ``blocks.{i}.{norm1, attn.qkv, attn.proj,
ls1.gamma, norm2, mlp.fc1, mlp.fc2 (or mlp.w12, mlp.w3 for ViT-g), ls2.gamma}``, ``norm``.

Conventions (those of the released models):

* patch 14, LayerNorm eps 1e-6, biases everywhere, LayerScale (``gamma``), pre-norm blocks;
* ``pos_embed`` holds a class slot and a square M x M patch grid (M = 37 for the 518-px training size);
* positional embeddings are used unchanged only for an exact M x M grid; otherwise the grid is resized
  **bicubically with** ``scale_factor = ((rows + 0.1) / M, (cols + 0.1) / M)`` and no antialiasing.
  Passing a scale factor (not a size) changes the sampling positions (source = (dst + 0.5) * M / (n + 0.1)
  - 0.5), so this is numerically different from timm's size-based resize, which is why the network is
  written here instead of borrowed from timm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

PATCH = 14
LN_EPS = 1e-6


@dataclass(frozen=True)
class ViTConfig:
    """Shape of a DINOv2 ViT. ``img_size`` fixes the stored positional grid (img_size // patch per side)."""

    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    ffn: str = "mlp"  # "mlp" (GELU MLP) or "swiglu" (fused SwiGLU of ViT-g)
    img_size: int = 518
    patch_size: int = PATCH
    interpolate_offset: float = 0.1


#: the four hub models (``dinov2_vit{s,b,l,g}14``), as named in MoGe configs
DINOV2_ARCHS: dict[str, ViTConfig] = {
    "dinov2_vits14": ViTConfig(384, 12, 6),
    "dinov2_vitb14": ViTConfig(768, 12, 12),
    "dinov2_vitl14": ViTConfig(1024, 24, 16),
    "dinov2_vitg14": ViTConfig(1536, 40, 24, ffn="swiglu"),
}


def vit_config(spec: Union[str, dict, ViTConfig]) -> ViTConfig:
    """A hub name (``'dinov2_vitl14'``), a ``ViTConfig``, or a dict of ``ViTConfig`` fields (our extension,
    used for tiny test models; the released checkpoints always name a hub model)."""
    if isinstance(spec, ViTConfig):
        return spec
    if isinstance(spec, str):
        if spec not in DINOV2_ARCHS:
            raise ValueError(f"unknown DINOv2 backbone {spec!r}; known: {', '.join(DINOV2_ARCHS)}")
        return DINOV2_ARCHS[spec]
    if isinstance(spec, dict):
        return ViTConfig(**spec)
    raise TypeError(f"DINOv2 backbone spec must be a name or a dict, got {type(spec).__name__}")


class PatchEmbed(nn.Module):
    """Non-overlapping patch x patch convolution; (B, 3, H, W) -> (B, H/p * W/p, D), rows first."""

    def __init__(self, patch_size: int, embed_dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        p = self.patch_size
        if H % p or W % p:
            raise ValueError(f"DINOv2 input {H}x{W} is not a multiple of the patch size {p}")
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(d)) v
        return self.proj(y.transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwiGLU(nn.Module):
    """ViT-g's feed-forward: ``w3(silu(a) * b)`` with ``(a, b) = split(w12(x))``; hidden width is 2/3 of the
    nominal one rounded up to a multiple of 8."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        hidden = (int(hidden * 2 / 3) + 7) // 8 * 8
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float = 1.0):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale on both residual branches."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        d = cfg.embed_dim
        self.norm1 = nn.LayerNorm(d, eps=LN_EPS)
        self.attn = Attention(d, cfg.num_heads)
        self.ls1 = LayerScale(d)
        self.norm2 = nn.LayerNorm(d, eps=LN_EPS)
        ffn = {"mlp": Mlp, "swiglu": SwiGLU}.get(cfg.ffn)
        if ffn is None:
            raise ValueError(f"unknown DINOv2 ffn {cfg.ffn!r} (mlp or swiglu)")
        self.mlp = ffn(d, int(d * cfg.mlp_ratio))
        self.ls2 = LayerScale(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


def interpolate_pos_grid(grid: torch.Tensor, rows: int, cols: int, offset: float) -> torch.Tensor:
    """Resize a (1, D, M, M) positional grid to (1, D, rows, cols) the DINOv2 way (bicubic, scale factor
    ``(n + offset) / M``, no antialias). ``offset = 0`` means a plain size-based resize."""
    M = grid.shape[-1]
    if offset:
        out = F.interpolate(grid, scale_factor=((rows + offset) / M, (cols + offset) / M), mode="bicubic",
                            antialias=False)
    else:
        out = F.interpolate(grid, size=(rows, cols), mode="bicubic", antialias=False)
    if tuple(out.shape[-2:]) != (rows, cols):  # cannot happen for offset < 1; guard the arithmetic anyway
        raise RuntimeError(f"positional grid resized to {tuple(out.shape[-2:])}, expected {(rows, cols)}")
    return out


class DinoVisionTransformer(nn.Module):
    """DINOv2 ViT. Input: normalised images (B, 3, 14*rows, 14*cols). See the module docstring."""

    def __init__(self, cfg: Union[str, dict, ViTConfig]):
        super().__init__()
        cfg = vit_config(cfg)
        self.cfg = cfg
        d = cfg.embed_dim
        self.patch_size = cfg.patch_size
        self.grid_size = cfg.img_size // cfg.patch_size
        self.patch_embed = PatchEmbed(cfg.patch_size, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid_size ** 2, d))
        self.mask_token = nn.Parameter(torch.zeros(1, d))  # used only with ``masks`` (pre-training)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(d, eps=LN_EPS)
        self.reset_parameters()

    @property
    def embed_dim(self) -> int:
        return self.cfg.embed_dim

    def reset_parameters(self) -> None:
        """Random initialisation in the DINOv2 style (truncated normal 0.02 for the positional table and the
        linear layers, tiny class token, zero mask token; LayerScale 1)."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        nn.init.zeros_(self.mask_token)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def pos_encoding(self, rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
        """(1, 1 + rows*cols, D) positional embeddings for a rows x cols patch grid."""
        M = self.grid_size
        if rows == M and cols == M:
            return self.pos_embed.to(dtype)
        pe = self.pos_embed.float()
        grid = pe[:, 1:].reshape(1, M, M, -1).permute(0, 3, 1, 2)
        grid = interpolate_pos_grid(grid, rows, cols, self.cfg.interpolate_offset)
        grid = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)
        return torch.cat([pe[:, :1], grid], dim=1).to(dtype)

    def prepare_tokens(self, x: torch.Tensor, masks: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Images (B, 3, H, W) -> tokens (B, 1 + N, D): class token first, then patches row by row.
        ``masks`` (B, N) bool replaces masked patch embeddings by ``mask_token``."""
        B, _, H, W = x.shape
        t = self.patch_embed(x)
        if masks is not None:
            t = torch.where(masks.unsqueeze(-1), self.mask_token.to(t.dtype).unsqueeze(0), t)
        t = torch.cat([self.cls_token.expand(B, -1, -1).to(t.dtype), t], dim=1)
        return t + self.pos_encoding(H // self.patch_size, W // self.patch_size, t.dtype)

    def block_indices(self, n: Union[int, Sequence[int]]) -> list[int]:
        """Blocks tapped by ``n``: an int = the last n blocks; a sequence = those indices, ascending, once."""
        depth = len(self.blocks)
        take = list(range(depth - n, depth)) if isinstance(n, int) else sorted({int(i) for i in n})
        if not take or not all(0 <= i < depth for i in take):
            raise ValueError(f"DINOv2: blocks {n!r} out of range for a depth-{depth} ViT")
        return take

    def get_intermediate_layers(self, x: torch.Tensor, n: Union[int, Sequence[int]] = 1, reshape: bool = False,
                                return_class_token: bool = False, norm: bool = True):
        """Outputs of some blocks for images x (B, 3, H, W).

        ``n``: an int takes the last n blocks, a sequence takes those block indices (0-based; returned in
        ascending block order, duplicates once, as Meta's implementation does). Each output is
        passed through the final LayerNorm when ``norm``. Returns a tuple of patch tokens (B, N, D) -- or
        (B, D, rows, cols) with ``reshape`` -- or, with ``return_class_token``, a tuple of (patch tokens,
        class token (B, D)) pairs.
        """
        take = self.block_indices(n)
        wanted = set(take)
        t = self.prepare_tokens(x)
        outs: dict[int, torch.Tensor] = {}
        for i, blk in enumerate(self.blocks[: max(take) + 1]):
            t = blk(t)
            if i in wanted:
                outs[i] = self.norm(t) if norm else t
        outputs = [outs[i] for i in take]
        cls = [o[:, 0] for o in outputs]
        patches = [o[:, 1:] for o in outputs]
        if reshape:
            B, _, H, W = x.shape
            rows, cols = H // self.patch_size, W // self.patch_size
            patches = [p.reshape(B, rows, cols, -1).permute(0, 3, 1, 2).contiguous() for p in patches]
        if return_class_token:
            return tuple(zip(patches, cls))
        return tuple(patches)


__all__ = ["DINOV2_ARCHS", "DinoVisionTransformer", "PATCH", "ViTConfig", "interpolate_pos_grid", "vit_config"]
