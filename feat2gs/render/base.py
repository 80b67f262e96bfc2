"""The renderer interface: one call, three backends (gsplat CUDA, our CPU kernel, a pure-torch reference).

All backends follow gsplat's conventions (``gsplat.rasterization`` with ``rasterize_mode='classic'``,
``packed=False``): EWA projection with gsplat's screen-space clamping, ``eps2d`` added to the 2D covariance,
16-pixel tiles, pixel centres at (j + 0.5, i + 0.5), alpha = min(0.999, o * exp(-sigma)) skipped below
1/255, front-to-back compositing that stops before transmittance would drop to 1e-4, SH colours
``max(sh_eval + 0.5, 0)`` with view directions from the camera centre, then a background blended with the
remaining transmittance.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Optional

import torch

from ..gaussians import Gaussians


@dataclass
class RenderOutput:
    image: torch.Tensor  # (C, 3, H, W)
    alpha: torch.Tensor  # (C, 1, H, W) accumulated opacity
    depth: Optional[torch.Tensor] = None  # (C, 1, H, W) expected z-depth (accumulated depth / alpha)
    radii: Optional[torch.Tensor] = None  # (C, N) projected radii in pixels, 0 = culled


@dataclass
class RenderSettings:
    near_plane: float = 0.01
    far_plane: float = 1e10
    eps2d: float = 0.3
    tile_size: int = 16


class Renderer(ABC):
    """Renders Gaussians into C cameras. Differentiable in every Gaussian parameter and in ``viewmats``."""

    name: str = "abstract"

    def __init__(self, settings: Optional[RenderSettings] = None):
        self.settings = settings or RenderSettings()

    @abstractmethod
    def render(
        self,
        gaussians: Gaussians,
        K: torch.Tensor,  # (C, 3, 3)
        viewmats: torch.Tensor,  # (C, 4, 4) world-to-camera
        width: int,
        height: int,
        background: Optional[torch.Tensor] = None,  # (3,) or (C, 3); default black
        render_depth: bool = False,
    ) -> RenderOutput:
        ...
