"""Backbone interface: images -> a token grid with the exact pixel extent it covers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F


@dataclass
class FeatureMap:
    """Features of V images on an (h, w) token grid.

    ``extent`` = (x0, y0, x1, y1): the region of the *input image* (pixel units of that image, width
    ``image_size[1]``, height ``image_size[0]``) that the grid tiles; token (i, j) covers
    [x0 + j*(x1-x0)/w, x0 + (j+1)*(x1-x0)/w) horizontally, likewise vertically. Padding a backbone
    added is already cropped, so the extent is inside the image or equal to it.
    """

    features: torch.Tensor  # (V, C, h, w)
    image_size: tuple[int, int]  # (H, W) of the images given to the backbone
    extent: tuple[float, float, float, float] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.extent is None:
            H, W = self.image_size
            self.extent = (0.0, 0.0, float(W), float(H))
        if self.features.ndim != 4:
            raise ValueError(f"FeatureMap.features: expected (V, C, h, w), got {tuple(self.features.shape)}")

    @property
    def channels(self) -> int:
        return int(self.features.shape[1])

    @property
    def grid(self) -> tuple[int, int]:
        return int(self.features.shape[2]), int(self.features.shape[3])

    def token_coords(self, px: torch.Tensor, py: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Continuous token-grid coordinates of image positions (token centres at integers)."""
        x0, y0, x1, y1 = self.extent
        h, w = self.grid
        return (px - x0) / (x1 - x0) * w - 0.5, (py - y0) / (y1 - y0) * h - 0.5

    def sample(self, height: int, width: int) -> torch.Tensor:
        """Bilinear features at the pixel centres of an (height, width) grid over the same images.

        (V, C, height, width). Positions outside the extent clamp to the border tokens, which is
        ``F.interpolate(..., align_corners=False)`` when the extent is the whole image.
        """
        H, W = self.image_size
        px = (torch.arange(width, dtype=torch.float32) + 0.5) * (W / width)
        py = (torch.arange(height, dtype=torch.float32) + 0.5) * (H / height)
        tx, ty = self.token_coords(px, py)
        h, w = self.grid
        gx = (tx + 0.5) / w * 2 - 1
        gy = (ty + 0.5) / h * 2 - 1
        grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)
        grid = grid.expand(self.features.shape[0], height, width, 2)
        return F.grid_sample(self.features.float(), grid, mode="bilinear", padding_mode="border",
                             align_corners=False)


class Backbone(ABC):
    """A frozen feature extractor. ``extract`` takes images (V, 3, H, W) in [0, 1] and owns its own
    preprocessing (normalisation, input range, patch-multiple sizing)."""

    name: str = "abstract"
    #: True when features are per pixel with no token grid (IUVRGB): no PCA, no upsampling.
    per_pixel: bool = False

    @abstractmethod
    def extract(self, images: torch.Tensor) -> FeatureMap:
        ...

    def cache_key(self) -> dict[str, Any]:
        """What identifies this backbone's features apart from the images (id, revision, layer, size)."""
        return {"name": self.name}
