"""Filling holes of per-pixel maps (depth) from the valid pixels around them."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def push_pull_fill(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Fill (V, H, W) ``values`` where ``weights`` is 0 from the weighted values around them: a pyramid of
    weighted 2x2 means is built down to one pixel ("push"), then each level's holes are filled from the coarser
    level, bilinearly upsampled ("pull"). Pixels with weight >= 1 keep their value exactly."""
    levels = []
    v, w = values * weights, weights.clone()
    while True:
        levels.append((v, w))
        if min(v.shape[-2:]) <= 1:
            break
        v = F.avg_pool2d(v[:, None], 2, ceil_mode=True)[:, 0] * 4
        w = F.avg_pool2d(w[:, None], 2, ceil_mode=True)[:, 0] * 4
    est = None
    for v, w in reversed(levels):
        own = v / w.clamp_min(1e-12)
        if est is None:
            est = torch.where(w > 0, own, torch.zeros_like(own))
            continue
        up = F.interpolate(est[:, None], size=v.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        a = w.clamp(0, 1)
        est = a * own + (1 - a) * up
    return est


def fill_depth(depth: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(V, H, W) z-depth with the invalid pixels filled by push-pull interpolation of inverse depth from the
    valid ones (views without any valid pixel are returned unchanged)."""
    if bool(valid.all()):
        return depth
    inv = push_pull_fill(torch.where(valid, 1 / depth.clamp_min(1e-12), torch.zeros_like(depth)), valid.float())
    filled = torch.where(valid, depth, 1 / inv.clamp_min(1e-12))
    has = valid.flatten(1).any(1)[:, None, None]
    return torch.where(has, filled, depth)
