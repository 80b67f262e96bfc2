"""Camera pose refinement: small SE(3) corrections applied to world-to-camera matrices."""

from __future__ import annotations

import torch
import torch.nn as nn


def skew(w: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrices."""
    z = torch.zeros_like(w[..., 0])
    return torch.stack([
        torch.stack([z, -w[..., 2], w[..., 1]], -1),
        torch.stack([w[..., 2], z, -w[..., 0]], -1),
        torch.stack([-w[..., 1], w[..., 0], z], -1),
    ], -2)


def so3_exp(w: torch.Tensor) -> torch.Tensor:
    """Rotation matrices exp([w]x) of axis-angle vectors (..., 3); exact and differentiable at 0."""
    return torch.linalg.matrix_exp(skew(w))


class PoseCorrection(nn.Module):
    """Per-view corrections (rotation ``rot`` in radians, translation ``trans`` in units of ``scale``),
    applied on the camera side: viewmat = [exp(rot) | scale * trans] @ viewmat0. Zero at initialisation.

    Expressing the translation in units of the scene extent makes one learning rate fit every scene.
    """

    def __init__(self, viewmats: torch.Tensor, scale: float = 1.0):
        super().__init__()
        self.register_buffer("base", viewmats.detach().clone().float())
        self.scale = float(scale)
        n = viewmats.shape[0]
        self.rot = nn.Parameter(torch.zeros(n, 3))
        self.trans = nn.Parameter(torch.zeros(n, 3))

    def forward(self, index=None) -> torch.Tensor:
        rot, trans, base = self.rot, self.trans, self.base
        if index is not None:
            rot, trans, base = rot[index], trans[index], base[index]
        delta = torch.zeros(rot.shape[0], 4, 4, dtype=base.dtype, device=base.device)
        delta[:, :3, :3] = so3_exp(rot)
        delta[:, :3, 3] = trans * self.scale
        delta[:, 3, 3] = 1.0
        return delta @ base
