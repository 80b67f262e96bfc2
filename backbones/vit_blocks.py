"""Generic ViT building blocks shared by the CroCo (DUSt3R/MASt3R) encoder and VGGT: 2D RoPE, attention with
optional q/k norm and RoPE, the pre-norm block with optional LayerScale (timm/DINOv2 key names), patch
embedding, token-map reshaping, and architecture configs from ``backbone.arch_overrides``."""

from __future__ import annotations

from dataclasses import fields
from typing import Mapping, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from feat2gs.errors import InputError


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
