"""IUVRGB: the no-backbone baseline of Feat2GS -- per pixel (image index, u, v, r, g, b)."""

from __future__ import annotations

import torch

from .base import Backbone, FeatureMap
from .registry import BackboneInfo, BackboneOptions, register_backbone


@register_backbone("iuvrgb", BackboneInfo(family="iuvrgb", channels=6, patch=1, default_layer="-",
                                          description="image index, pixel u, v in [0,1], rgb in [-1,1]; no PCA"))
class IUVRGB(Backbone):
    """Features [i/(V-1), u, v, r, g, b] at every pixel, with u, v in [0, 1] at pixel centres and rgb in
    [-1, 1]. With a single view the index channel is 0 (the reference divides by zero there)."""

    per_pixel = True

    def __init__(self, opts: BackboneOptions, info: BackboneInfo):
        self.name = opts.name or "iuvrgb"

    def extract(self, images: torch.Tensor) -> FeatureMap:
        V, _, H, W = images.shape
        idx = torch.arange(V, dtype=torch.float32) / max(V - 1, 1)
        u = (torch.arange(W, dtype=torch.float32) + 0.5) / W
        v = (torch.arange(H, dtype=torch.float32) + 0.5) / H
        feats = torch.cat([
            idx.view(V, 1, 1, 1).expand(V, 1, H, W),
            u.view(1, 1, 1, W).expand(V, 1, H, W),
            v.view(1, 1, H, 1).expand(V, 1, H, W),
            images.float() * 2 - 1,
        ], dim=1)
        return FeatureMap(feats, image_size=(H, W), meta={"backbone": self.name})
