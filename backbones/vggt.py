"""VGGT-1B features: the DINOv2 patch embedding (``vggt_e``) or the alternating-attention aggregator
(``vggt_d``), written here under the official key names so that ``facebook/VGGT-1B`` loads strictly.

Architecture (``vggt/models/aggregator.py`` of facebookresearch/vggt):

* ``aggregator.patch_embed``: a DINOv2 ViT-L/14 with 4 register tokens (``cls_token``, ``pos_embed`` for a
  37x37 grid (518 px), ``register_tokens``, ``mask_token``, ``patch_embed.proj``, 24 ``blocks`` with
  LayerScale, ``norm``; LayerNorm eps 1e-6). Its position embedding is resized bicubically (antialiased) to
  the token grid. Output ``x_norm_patchtokens``: the final-norm patch tokens, 1024-d.
* ``aggregator.frame_blocks`` / ``aggregator.global_blocks``: 24 + 24 blocks (LayerNorm eps 1e-5, q/k
  LayerNorm, LayerScale, 2D RoPE base 100 on patch positions shifted by +1; the camera and 4 register
  tokens sit at position 0). Each view's tokens are [camera, 4 registers, patches]; the first view gets
  the first (reference) camera/register tokens, all other views the second ones. Frame blocks attend within
  a view, global blocks across all views; layer i's output is frame_i || global_i (2048-d).

Multi-view: the global blocks mix all views of a scene, so ``vggt_d`` runs every view in one forward
(``joint_views``); the first view is the reference frame, so features depend on view order. Memory grows
with V: activations ~ V * (h*w + 5) tokens x 2048 channels per layer kept transiently, attention over
V*(h*w+5) tokens (memory-efficient SDPA kernels keep it linear in the token count); the aggregator's
0.91 B parameters take 3.6 GB in float32 (the heads are not loaded). ``vggt_e`` loads only the DINOv2 part
(0.30 B parameters, 1.2 GB) and runs views in batches, as it has no cross-view attention.

Input: images in [0, 1], resized (no crop, unlike the official loader) to multiples of 14 with the long
side 518 by default, ImageNet-normalised as the aggregator does internally; features cover the whole image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from feat2gs.errors import InputError

from .common import IMAGENET_MEAN, IMAGENET_STD, TokenBackbone
from .checkpoint import load_strict, read_checkpoint
from .registry import BackboneInfo, register_backbone
from .vit_blocks import Block, PatchEmbed, RoPE2D, build_config, grid_positions, tokens_to_map
from .weights import WeightsSpec


@dataclass(frozen=True)
class VGGTConfig:
    """``facebook/VGGT-1B``: Aggregator(img_size=518, patch_size=14, embed_dim=1024, depth=24,
    num_heads=16, num_register_tokens=4, patch_embed='dinov2_vitl14_reg', qk_norm=True, rope_freq=100,
    init_values=0.01); its DINOv2 ViT-L/14 has depth 24, 16 heads, LayerScale init 1.0."""

    embed_dim: int = 1024
    depth: int = 24  # aggregator frame/global block pairs
    num_heads: int = 16
    dino_depth: int = 24
    dino_heads: int = 16
    patch_size: int = 14
    pos_grid: int = 37  # side of the DINOv2 position-embedding grid (518 / 14)
    num_register_tokens: int = 4
    mlp_ratio: float = 4.0
    rope_base: float = 100.0


class DinoV2(nn.Module):
    """DINOv2 ViT with registers (module names of ``DinoVisionTransformer``, ``block_chunks=0``)."""

    def __init__(self, cfg: VGGTConfig):
        super().__init__()
        C = cfg.embed_dim
        self.patch_size = cfg.patch_size
        self.patch_embed = PatchEmbed(cfg.patch_size, C)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, C))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.pos_grid ** 2 + 1, C))
        self.register_tokens = nn.Parameter(torch.zeros(1, cfg.num_register_tokens, C))
        self.mask_token = nn.Parameter(torch.zeros(1, C))  # unused at inference; part of the checkpoint
        self.blocks = nn.ModuleList(Block(C, cfg.dino_heads, cfg.mlp_ratio, norm_eps=1e-6, layer_scale=1.0)
                                    for _ in range(cfg.dino_depth))
        self.norm = nn.LayerNorm(C, eps=1e-6)
        self.num_register_tokens = cfg.num_register_tokens

    def init_weights(self) -> None:
        """DINOv2's initialisation (truncated-normal linears and position embedding)."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        nn.init.normal_(self.register_tokens, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def position_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        """(1, 1 + h*w, C): the class-token embedding and the patch grid resized bicubically (antialiased,
        by output size) to ``grid`` when it differs from the trained square grid."""
        pe = self.pos_embed
        M = int(round((pe.shape[1] - 1) ** 0.5))
        if tuple(grid) == (M, M):
            return pe
        patch = pe[:, 1:].float().reshape(1, M, M, -1).permute(0, 3, 1, 2)
        patch = F.interpolate(patch, size=tuple(grid), mode="bicubic", antialias=True, align_corners=False)
        patch = patch.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1).to(pe.dtype)
        return torch.cat([pe[:, :1], patch], dim=1)

    def forward(self, x: torch.Tensor, layers: Sequence[int]) -> tuple[list[torch.Tensor], tuple[int, int]]:
        """Final-normed patch tokens (B, h*w, C) after the given blocks (the last block's is
        ``x_norm_patchtokens``), and the token grid (h, w)."""
        tokens, grid = self.patch_embed(x)
        B = tokens.shape[0]
        tokens = torch.cat([self.cls_token.expand(B, -1, -1), tokens], dim=1) + self.position_embedding(grid)
        tokens = torch.cat([tokens[:, :1], self.register_tokens.expand(B, -1, -1), tokens[:, 1:]], dim=1)
        start = 1 + self.num_register_tokens
        wanted, out = set(layers), {}
        for i, blk in enumerate(self.blocks[:max(layers) + 1]):
            tokens = blk(tokens)
            if i in wanted:
                out[i] = self.norm(tokens)[:, start:]
        return [out[i] for i in layers], grid


class Aggregator(nn.Module):
    """VGGT's alternating-attention aggregator (official module names). ``encoder_only``: just the DINOv2
    ``patch_embed`` (the ``enc`` variant needs nothing else; saves 2.4 GB of float32 weights)."""

    def __init__(self, cfg: VGGTConfig, encoder_only: bool = False):
        super().__init__()
        C = cfg.embed_dim
        rope = RoPE2D(cfg.rope_base)
        self.patch_embed = DinoV2(cfg)
        self.encoder_only = encoder_only
        if encoder_only:
            return

        def blocks():
            return nn.ModuleList(Block(C, cfg.num_heads, cfg.mlp_ratio, norm_eps=1e-5, qk_norm=True,
                                       layer_scale=0.01, rope=rope) for _ in range(cfg.depth))

        self.frame_blocks = blocks()
        self.global_blocks = blocks()
        # index 0: the first (reference) view, index 1: every other view
        self.camera_token = nn.Parameter(torch.zeros(1, 2, 1, C))
        self.register_token = nn.Parameter(torch.zeros(1, 2, cfg.num_register_tokens, C))
        self.patch_start = 1 + cfg.num_register_tokens

    def init_weights(self) -> None:
        self.patch_embed.init_weights()
        if self.encoder_only:
            return
        nn.init.normal_(self.camera_token, std=1e-6)
        nn.init.normal_(self.register_token, std=1e-6)

    def special_tokens(self, S: int) -> torch.Tensor:
        """(S, 1 + registers, C): reference tokens for view 0, the others' tokens for views 1..S-1."""
        tok = torch.cat([self.camera_token, self.register_token], dim=2)[0]  # (2, 1+R, C)
        return torch.cat([tok[:1], tok[1:].expand(S - 1, -1, -1)], dim=0)

    def forward(self, x: torch.Tensor, layers: Sequence[int]) -> list[torch.Tensor]:
        """x: (S, 3, H, W), the S views of one scene. Patch-token maps (S, 2C, h, w) of the given layers."""
        S = x.shape[0]
        (patches,), grid = self.patch_embed(x, [len(self.patch_embed.blocks) - 1])
        tokens = torch.cat([self.special_tokens(S), patches], dim=1)  # (S, P, C)
        _, P, C = tokens.shape
        pos = grid_positions(S, *grid, device=x.device, offset=1)
        pos = torch.cat([torch.zeros(S, self.patch_start, 2, dtype=pos.dtype, device=x.device), pos], dim=1)
        wanted, out = set(layers), {}
        for i in range(max(layers) + 1):
            frame = self.frame_blocks[i](tokens, pos)
            glob = self.global_blocks[i](frame.reshape(1, S * P, C), pos.reshape(1, S * P, 2)).reshape(S, P, C)
            if i in wanted:
                out[i] = tokens_to_map(torch.cat([frame, glob], dim=-1)[:, self.patch_start:], grid)
            tokens = glob
        return [out[i] for i in layers]


class VGGTTrunk(nn.Module):
    """Holds ``aggregator`` so that parameter names match the official ``VGGT`` model's."""

    def __init__(self, cfg: VGGTConfig, encoder_only: bool = False):
        super().__init__()
        self.aggregator = Aggregator(cfg, encoder_only)


VGGT_WEIGHTS = WeightsSpec("vggt", "facebook/VGGT-1B", ("model.safetensors",),
                           revision="860abec7937da0a4c03c41d3c269c366e82abdf9")
#: heads of the official VGGT model, not used for features
VGGT_HEAD_KEYS = ("camera_head.", "depth_head.", "point_head.", "track_head.")
#: aggregator parts the ``enc`` variant does not use
VGGT_DECODER_KEYS = ("aggregator.frame_blocks.", "aggregator.global_blocks.", "aggregator.camera_token",
                     "aggregator.register_token")
VARIANTS = {"enc": "encoder: DINOv2 x_norm_patchtokens (1024-d)",
            "dec": "decoder: last aggregator layer, frame || global (2048-d)"}


@register_backbone("vggt", BackboneInfo(family="vggt", channels=2048, patch=14, default_layer=-1,
                                        weights=VGGT_WEIGHTS,
                                        description="VGGT-1B aggregator, frame||global of the last layer "
                                                    "(variant=enc: DINOv2 patch tokens, 1024-d)"))
class VGGTBackbone(TokenBackbone):
    """VGGT-1B features. ``variant``: ``dec`` (default, the reference's ``vggt_d``) or ``enc`` (``vggt_e``).

    ``layer`` indexes the aggregator layers (dec) or the DINOv2 blocks (enc, each output final-normed);
    -1 is the last. ``arch_overrides``: fields of ``VGGTConfig``. The whole official checkpoint's
    aggregator is loaded strictly in both variants; the camera/depth/point/track heads are ignored.
    """

    mean = IMAGENET_MEAN
    std = IMAGENET_STD
    patch = 14
    num_layers = 24
    default_long_side = 518

    def build_model(self, pretrained_path):
        variant = self.opts.variant or "dec"
        if variant not in VARIANTS:
            raise InputError("backbone.variant", f"{variant!r} is not a VGGT variant; choose from {sorted(VARIANTS)}")
        self.variant = variant
        cfg = build_config(VGGTConfig, self.opts.arch_overrides)
        self.patch = cfg.patch_size
        self.num_layers = cfg.depth if variant == "dec" else cfg.dino_depth
        self.joint_views = variant == "dec"
        model = VGGTTrunk(cfg, encoder_only=variant == "enc")
        if pretrained_path is None:
            model.aggregator.init_weights()
        else:
            unused = VGGT_HEAD_KEYS + (VGGT_DECODER_KEYS if variant == "enc" else ())
            load_strict(model, read_checkpoint(pretrained_path), keep=("aggregator.",), ignore=unused,
                        source=str(pretrained_path))
        return model

    def forward_layers(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        agg = self.model.aggregator
        if self.variant == "dec":
            return agg(x, layers)
        outs, grid = agg.patch_embed(x, layers)
        return [tokens_to_map(t, grid) for t in outs]

    def cache_key(self):
        key = super().cache_key()
        key["variant"] = self.variant  # resolved (None means dec)
        return key
