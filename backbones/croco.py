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

The generic ViT pieces (``RoPE2D``, ``Attention``, ``Block``, ``PatchEmbed``) live in ``backbones/vit_blocks.py``
(shared with ``backbones/vggt.py``); the CroCo decoder pieces (``CrossAttention``, ``DecoderBlock``) and this encoder are
the two-view DUSt3R / MASt3R networks of ``backbones/croco_stereo.py`` (one implementation); checkpoints
are read and loaded strictly by ``backbones/checkpoint.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import load_strict, read_checkpoint
from .common import HALF, TokenBackbone
from .registry import BackboneInfo, register_backbone
from .vit_blocks import Attention, Block, Mlp, PatchEmbed, RoPE2D, build_config, grid_positions, tokens_to_map
from .weights import WeightsSpec


# ------------------------------------------------------------------------------------- CroCo decoder parts
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
