"""Unprojection with MoGe's normalised intrinsics.

Normalised intrinsics K_n use image coordinates u = x / W, v = y / H in [0, 1], pixel (i, j) centred at
u = (j + 0.5) / W, v = (i + 0.5) / H; ``feat2gs.geometry.focal.normalized_to_pixel_intrinsics`` gives K in
pixels (diag(W, H, 1) @ K_n, centres at j + 0.5 as in ``feat2gs.scene.Cameras``). Camera frame OpenCV
(x right, y down, z forward); depth is z. (Focal recovery and the focal/intrinsics conversions live in
``feat2gs.geometry.focal``.)
"""

from __future__ import annotations

import torch


def depth_map_to_point_map(depth: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Camera points (..., H, W, 3) of z-depth maps (..., H, W) and normalised intrinsics (..., 3, 3):
    P = depth * K^-1 [u, v, 1]^T at the pixel centres, in the dtype of ``depth``."""
    H, W = depth.shape[-2:]
    u = (torch.arange(W, dtype=depth.dtype, device=depth.device) + 0.5) / W
    v = (torch.arange(H, dtype=depth.dtype, device=depth.device) + 0.5) / H
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    uv1 = torch.stack([uu, vv, torch.ones_like(uu)], dim=-1)  # (H, W, 3)
    rays = torch.einsum("...ij,hwj->...hwi", torch.linalg.inv(intrinsics.to(depth.dtype)), uv1)
    return rays * depth.unsqueeze(-1)
