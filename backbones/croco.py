"""DUSt3R and MASt3R encoders: the CroCo ViT-L/16 with 2D RoPE, written here, loading the official weights.

Feat2GS reads the *encoder* of DUSt3R / MASt3R: patch embedding, 24 transformer blocks with 2D rotary
position embedding (RoPE, base frequency 100, no absolute position embedding) and the final ``enc_norm``
(1024 channels, one token per 16x16 pixels). The official checkpoints hold the whole stereo model; we load
the encoder part strictly under the official key names (``patch_embed.proj.*``, ``enc_blocks.{i}.*``,
``enc_norm.*``) and ignore the decoder / head keys explicitly (any other key is an error).

Input: images in [0, 1], resized (not cropped) to multiples of 16 with the long side 512 by default (the
DUSt3R/MASt3R training resolution), normalised to [-1, 1] as both models were trained. Both were trained on
landscape crops only (``ManyAR_PatchEmbed`` transposes portrait images); we do the same and transpose the
feature map back, so features stay aligned with the pixels of the image as given.

The generic ViT pieces here (``RoPE2D``, ``Attention``, ``Block``, ``PatchEmbed``) are shared with
``backbones/vggt.py``; the CroCo decoder pieces (``CrossAttention``, ``DecoderBlock``) and this encoder are
the two-view DUSt3R / MASt3R networks of ``backbones/croco_stereo.py`` (one implementation); checkpoints
are read and loaded strictly by ``backbones/checkpoint.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Mapping, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from feat2gs.errors import InputError

from .checkpoint import load_strict, read_checkpoint
from .common import HALF, TokenBackbone
from .registry import BackboneInfo, register_backbone
from .weights import WeightsSpec


# ------------------------------------------------------------------------------------- shared ViT parts
class RoPE2D:
    """2D rotary position embedding (CroCo v2 / DUSt3R / VGGT convention); holds no parameters.

    A head vector of size D is split into halves: the first half is rotated by the token's row ``y``, the
    second by its column ``x``. Within a half of size d = D/2, channel pairs (i, i + d/2), i < d/2, are
    rotated by the angle ``p * base**(-2i/d)`` ("rotate-half" layout). Attention scores between rotated
    queries and keys then depend only on the *relative* positions of the tokens.
    """

    def __init__(self, base: float = 100.0):
        self.base = float(base)

    def __call__(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """x: (B, heads, N, D) with D % 4 == 0; pos: (B, N, 2) integer (y, x) positions."""
        D = x.shape[-1]
        if D % 4:
            raise ValueError(f"RoPE2D: head dimension {D} must be a multiple of 4")
        d = D // 2
        inv_freq = self.base ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)
        out = []
        for axis, part in enumerate(x.split(d, dim=-1)):
            ang = pos[..., axis].to(torch.float32)[..., None] * inv_freq  # (B, N, d/2)
            ang = torch.cat([ang, ang], dim=-1)[:, None]  # (B, 1, N, d)
            lo, hi = part.chunk(2, dim=-1)
            rotated = torch.cat([-hi, lo], dim=-1)
            out.append(part * ang.cos().to(x.dtype) + rotated * ang.sin().to(x.dtype))
        return torch.cat(out, dim=-1)


def grid_positions(batch: int, h: int, w: int, device, offset: int = 0) -> torch.Tensor:
    """(batch, h*w, 2) integer (y, x) positions of a row-major token grid, plus ``offset``."""
    y, x = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    pos = torch.stack([y.reshape(-1), x.reshape(-1)], dim=-1) + offset
    return pos[None].expand(batch, -1, -1)


class Attention(nn.Module):
    """Multi-head self-attention with fused ``qkv`` (output layout (3, heads, head_dim)), optional
    per-head LayerNorm of q and k (``q_norm``/``k_norm``, VGGT) and optional 2D RoPE on q and k."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = False, norm_eps: float = 1e-5,
                 rope: Optional[RoPE2D] = None):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"Attention: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.LayerNorm(head_dim, eps=norm_eps) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(head_dim, eps=norm_eps) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)
        self.rope = rope

    def forward(self, x: torch.Tensor, pos: Optional[torch.Tensor] = None) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rope is not None:
            q, k = self.rope(q, pos), self.rope(k, pos)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block (timm/DINOv2 key names): norm1, attn, [ls1], norm2, mlp, [ls2]."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, norm_eps: float = 1e-6,
                 qk_norm: bool = False, layer_scale: Optional[float] = None, rope: Optional[RoPE2D] = None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qk_norm=qk_norm, rope=rope)
        self.ls1 = LayerScale(dim, layer_scale) if layer_scale else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, layer_scale) if layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor, pos: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), pos))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection (key ``proj``): (B, 3, H, W) -> (B, h*w, C) and the grid (h, w)."""

    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        H, W = x.shape[-2:]
        if H % self.patch or W % self.patch:
            raise ValueError(f"PatchEmbed: input {H}x{W} is not a multiple of the patch size {self.patch}")
        x = self.proj(x)
        return x.flatten(2).transpose(1, 2), (int(x.shape[-2]), int(x.shape[-1]))


def tokens_to_map(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, h*w, C) row-major tokens -> (B, C, h, w)."""
    B, _, C = tokens.shape
    return tokens.transpose(1, 2).reshape(B, C, *grid)


def build_config(cls, overrides: Mapping, where: str = "backbone.arch_overrides"):
    """A config dataclass ``cls`` with ``overrides`` applied; unknown fields are an InputError."""
    names = {f.name for f in fields(cls)}
    bad = sorted(set(overrides) - names)
    if bad:
        raise InputError(where, f"unknown field(s) {bad} for {cls.__name__}; known: {sorted(names)}")
    return cls(**dict(overrides))


class CrossAttention(nn.Module):
    """CroCo multi-head cross-attention (official key names ``projq``, ``projk``, ``projv``, ``proj``, all with
    bias): queries from x, keys/values from the other view's tokens y, 2D RoPE on q (x's positions) and k (y's)."""

    def __init__(self, dim: int, num_heads: int, rope: Optional[RoPE2D] = None):
        super().__init__()
        self.num_heads = num_heads
        self.projq = nn.Linear(dim, dim)
        self.projk = nn.Linear(dim, dim)
        self.projv = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.rope = rope

    def forward(self, x: torch.Tensor, y: torch.Tensor, xpos: torch.Tensor, ypos: torch.Tensor) -> torch.Tensor:
        B, Nq, C = x.shape
        Nk = y.shape[1]
        h = self.num_heads
        q = self.projq(x).view(B, Nq, h, C // h).transpose(1, 2)
        k = self.projk(y).view(B, Nk, h, C // h).transpose(1, 2)
        v = self.projv(y).view(B, Nk, h, C // h).transpose(1, 2)
        if self.rope is not None:
            q, k = self.rope(q, xpos), self.rope(k, ypos)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, Nq, C))


class DecoderBlock(nn.Module):
    """CroCo decoder block (official key names): self-attention (``norm1``, ``attn``), cross-attention to the
    other view (``norm2``, ``cross_attn``, the other view's tokens normalised by ``norm_y``), MLP (``norm3``,
    ``mlp``); LayerNorm eps 1e-6, RoPE on every attention."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, rope: Optional[RoPE2D] = None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, rope=rope)
        self.cross_attn = CrossAttention(dim, num_heads, rope=rope)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm_y = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor, y: torch.Tensor, xpos: torch.Tensor, ypos: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), xpos)
        yn = self.norm_y(y)
        x = x + self.cross_attn(self.norm2(x), yn, xpos, ypos)
        return x + self.mlp(self.norm3(x))


# ------------------------------------------------------------------------------------- CroCo encoder
@dataclass(frozen=True)
class CroCoConfig:
    """Encoder of DUSt3R/MASt3R ``..._ViTLarge_BaseDecoder_512_*`` (``enc_embed_dim=1024, enc_depth=24,
    enc_num_heads=16, patch_size=16, pos_embed='RoPE100'``)."""

    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    patch_size: int = 16
    mlp_ratio: float = 4.0
    rope_base: float = 100.0


#: top-level modules of the official AsymmetricCroCo3DStereo / AsymmetricMASt3R that are not the encoder
CROCO_DECODER_KEYS = ("mask_token", "decoder_embed.", "dec_blocks.", "dec_blocks2.", "dec_norm.",
                      "downstream_head1.", "downstream_head2.")
CROCO_ENCODER_KEYS = ("patch_embed.", "enc_blocks.", "enc_norm.")


class CroCoEncoder(nn.Module):
    """The CroCo v2 / DUSt3R image encoder (official module names). LayerNorm eps 1e-6, GELU MLP x4,
    qkv bias, RoPE on q/k of every block; no absolute position embedding, no class token."""

    def __init__(self, cfg: CroCoConfig):
        super().__init__()
        self.cfg = cfg
        rope = RoPE2D(cfg.rope_base)
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.embed_dim)
        self.enc_blocks = nn.ModuleList(Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, norm_eps=1e-6, rope=rope)
                                        for _ in range(cfg.depth))
        self.enc_norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)

    def init_weights(self) -> None:
        """CroCo's initialisation (xavier-uniform linears and patch projection, zero biases)."""
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """All blocks + ``enc_norm``: tokens (B, h*w, C), their (y, x) positions (B, h*w, 2) and the grid."""
        tokens, grid = self.patch_embed(x)
        pos = grid_positions(x.shape[0], *grid, device=x.device)
        for blk in self.enc_blocks:
            tokens = blk(tokens, pos)
        return self.enc_norm(tokens), pos, grid

    def forward(self, x: torch.Tensor, layers: Sequence[int]) -> list[torch.Tensor]:
        """Token maps (B, C, h, w) after the given blocks; the last block's output gets ``enc_norm``
        (as the official ``_encode_image(return_all_blocks=True)``), earlier ones are raw block outputs."""
        tokens, grid = self.patch_embed(x)
        pos = grid_positions(x.shape[0], *grid, device=x.device)
        wanted, out = set(layers), {}
        last = len(self.enc_blocks) - 1
        for i, blk in enumerate(self.enc_blocks[:max(layers) + 1]):
            tokens = blk(tokens, pos)
            if i in wanted:
                out[i] = tokens_to_map(self.enc_norm(tokens) if i == last else tokens, grid)
        return [out[i] for i in layers]


DUST3R_WEIGHTS = WeightsSpec("dust3r", "naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt", ("model.safetensors",),
                             revision="61c57447d7b0adc8a1a30b2b0adec7a8935aa2a3")
MAST3R_WEIGHTS = WeightsSpec("mast3r", "naver/MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric",
                             ("model.safetensors",), revision=None)


@register_backbone("mast3r", BackboneInfo(family="croco", channels=1024, patch=16, default_layer=-1,
                                          weights=MAST3R_WEIGHTS,
                                          description="MASt3R ViT-L/16 encoder (RoPE100), after enc_norm"))
@register_backbone("dust3r", BackboneInfo(family="croco", channels=1024, patch=16, default_layer=-1,
                                          weights=DUST3R_WEIGHTS,
                                          description="DUSt3R ViT-L/16 encoder (RoPE100), after enc_norm"))
class CroCoBackbone(TokenBackbone):
    """DUSt3R / MASt3R encoder features (``layer=-1``: after ``enc_norm``, 1024-d, 1/16 resolution).

    ``arch_overrides``: fields of ``CroCoConfig`` (tiny test models). Portrait inputs are transposed to
    landscape for the encoder (as the models were trained) and the features transposed back.
    """

    mean = HALF
    std = HALF
    patch = 16
    num_layers = 24
    default_long_side = 512

    def build_model(self, pretrained_path):
        cfg = build_config(CroCoConfig, self.opts.arch_overrides)
        self.patch, self.num_layers = cfg.patch_size, cfg.depth
        model = CroCoEncoder(cfg)
        if pretrained_path is None:
            model.init_weights()
        else:
            load_strict(model, read_checkpoint(pretrained_path), keep=CROCO_ENCODER_KEYS,
                        ignore=CROCO_DECODER_KEYS, source=str(pretrained_path))
        return model

    def forward_layers(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        if x.shape[-2] > x.shape[-1]:  # portrait: encode the landscape transpose
            return [m.transpose(-1, -2) for m in self.model(x.transpose(-1, -2), layers)]
        return self.model(x, layers)
