"""Point splatting into views: the z-buffer of a point set (used for visibility masks and for sparse depth
targets)."""

from __future__ import annotations

import torch

from ..scene import Cameras


def splat_depth(cameras: Cameras, points: torch.Tensor) -> torch.Tensor:
    """(V, H, W) z-depth of world points (N, 3) splatted into every view: each point lands on the pixel that
    contains its projection (pixel (i, j) covers [j, j+1) x [i, i+1)); the nearest point wins a pixel
    (z-buffer); 0 where no point lands. Points behind the camera or with a non-finite projection are ignored."""
    V, H, W = len(cameras), cameras.height, cameras.width
    uv, z = cameras.project(points.float())
    col, row = torch.floor(uv[..., 0]), torch.floor(uv[..., 1])
    inside = (z > 0) & torch.isfinite(z) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
    flat = torch.where(inside, row * W + col, torch.zeros_like(row)).long()
    flat = flat + torch.arange(V, device=flat.device).unsqueeze(1) * (H * W)
    zbuf = torch.full((V * H * W,), float("inf"), device=z.device)
    zbuf.scatter_reduce_(0, flat[inside], z[inside].float(), reduce="amin")
    zbuf = torch.where(torch.isfinite(zbuf), zbuf, torch.zeros_like(zbuf))
    return zbuf.reshape(V, H, W)
