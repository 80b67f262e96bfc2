"""Thin wrapper over ``gsplat.rasterization`` (classic mode, ``packed=False``) for CUDA devices.

Our conventions are gsplat's, so this only maps arguments: raw ``Gaussians`` are activated here (gsplat
normalises the quaternions itself), SH coefficients (N, K, 3) go in with the Gaussians' SH degree, the depth
is gsplat's ``"RGB+ED"`` channel, and outputs are moved from gsplat's channels-last (C, H, W, D) to ours
(C, D, H, W). ``RenderOutput.radii`` is the larger of gsplat's two per-axis radii.
"""

from __future__ import annotations

import functools
from typing import Optional

import torch

from ..errors import InputError
from ..gaussians import Gaussians
from .base import Renderer, RenderOutput
from .projection import background_for, check_cameras, check_settings


@functools.lru_cache(maxsize=1)
def gsplat_cuda_available() -> bool:
    """True when a CUDA device is present and gsplat's CUDA extension loads (it JIT-compiles once)."""
    if not torch.cuda.is_available():
        return False
    try:
        from gsplat.cuda._backend import _C
    except Exception:  # noqa: BLE001 -- any failure to build/load means "not available"
        return False
    return _C is not None


class GsplatRenderer(Renderer):
    """gsplat's CUDA rasteriser behind our interface."""

    name = "gsplat"

    def render(self, gaussians: Gaussians, K: torch.Tensor, viewmats: torch.Tensor, width: int, height: int,
               background: Optional[torch.Tensor] = None, render_depth: bool = False) -> RenderOutput:
        from gsplat import rasterization

        check_settings(self.settings)
        C = check_cameras(K, viewmats, width, height)
        means = gaussians.means
        if means.device.type != "cuda":
            raise InputError("gaussians.means", f"the gsplat renderer needs CUDA tensors, got {means.device}")
        bg = None if background is None else background_for(background, C, means).contiguous()
        s = self.settings
        colors, alphas, meta = rasterization(
            means=means,
            quats=gaussians.quats,
            scales=gaussians.scales,
            opacities=gaussians.opacities,
            colors=gaussians.sh,
            viewmats=viewmats.to(means),
            Ks=K.to(means),
            width=int(width),
            height=int(height),
            near_plane=s.near_plane,
            far_plane=s.far_plane,
            eps2d=s.eps2d,
            sh_degree=gaussians.sh_degree,
            packed=False,
            tile_size=int(s.tile_size),
            backgrounds=bg,
            render_mode="RGB+ED" if render_depth else "RGB",
            rasterize_mode="classic",
        )
        image = colors[..., :3].permute(0, 3, 1, 2)
        depth = colors[..., 3:4].permute(0, 3, 1, 2) if render_depth else None
        return RenderOutput(image=image, alpha=alphas.permute(0, 3, 1, 2), depth=depth,
                            radii=meta["radii"].amax(dim=-1))
