"""``noise``: the chance-level control of a readout probe -- i.i.d. Gaussian codes per token, no image content.

Every token of every view gets its own independent N(0, 1) vector of ``channels`` values on the same token grid
a ViT/16 would have at the same input size (``backbone.input_size``, default 512 px long side; ``variant`` sets
the patch size, e.g. ``14`` for a DINOv2-like grid). The codes of a view are drawn from a generator seeded by
``backbone.seed`` and a hash of that view's pixels, so the same image always gets the same codes (the feature
cache stays consistent) while two different images get independent ones; nothing else about the image reaches
the features.

What it rules out: in Geometry and All mode the heads can memorise a per-token lookup table (a distinct code per
token lets an MLP place each token's Gaussians freely), so any score a backbone shares with ``noise`` is
explained by capacity, not by what the features know about the scene. ``random-<net>`` additionally keeps the
architecture's image-dependent but untrained structure, ``iuvrgb`` gives pixels and coordinates.
"""

from __future__ import annotations

import hashlib

import torch

from .base import Backbone, FeatureMap
from .common import input_size
from .registry import BackboneInfo, BackboneOptions, register_backbone

NOISE_CHANNELS = 256
NOISE_PATCH = 16
NOISE_LONG_SIDE = 512


@register_backbone("noise", BackboneInfo(family="noise", channels=NOISE_CHANNELS, patch=NOISE_PATCH,
                                         default_layer="-",
                                         description="control: i.i.d. N(0,1) codes per token (ViT/16 grid at "
                                                     "the input size), no image content"))
class NoiseCodes(Backbone):
    """I.i.d. per-token Gaussian codes (see the module docstring)."""

    def __init__(self, opts: BackboneOptions, info: BackboneInfo):
        self.opts = opts
        self.name = opts.name or "noise"
        try:
            self.patch = int(opts.variant) if opts.variant is not None else NOISE_PATCH
        except (TypeError, ValueError):
            raise ValueError(f"backbone.variant: the noise control takes a patch size (e.g. 16 or 14), "
                             f"got {opts.variant!r}") from None
        if self.patch < 1:
            raise ValueError(f"backbone.variant: patch size must be >= 1, got {self.patch}")
        self.channels = int(opts.arch_overrides.get("channels", NOISE_CHANNELS))
        self.long_side = opts.input_size or NOISE_LONG_SIDE

    def _codes(self, image: torch.Tensor, h: int, w: int) -> torch.Tensor:
        digest = hashlib.sha256(image.detach().cpu().float().contiguous().numpy().tobytes()).digest()
        seed = (int.from_bytes(digest[:8], "little") ^ (int(self.opts.seed) * 0x9E3779B97F4A7C15)) % (2 ** 63)
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(self.channels, h, w, generator=gen)

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> FeatureMap:
        V, _, H, W = images.shape
        ih, iw = input_size(H, W, self.patch, self.long_side)
        h, w = ih // self.patch, iw // self.patch
        feats = torch.stack([self._codes(images[v], h, w) for v in range(V)])
        return FeatureMap(feats, image_size=(H, W),
                          meta={"backbone": self.name, "input_size": (ih, iw), "layers": []})

    def cache_key(self) -> dict:
        return {"name": self.name, "family": "noise", "patch": self.patch, "channels": self.channels,
                "input_size": self.long_side, "seed": int(self.opts.seed), "version": 1}
