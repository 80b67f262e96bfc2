"""Initialiser interface: cameras + a per-pixel world point map of the train views."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..registry import Registry
from ..scene import Cameras, Scene

INITIALISERS: Registry["Initialiser"] = Registry("initialiser")


@dataclass
class PointInit:
    """Per-pixel initial geometry of the train views, at the train images' resolution.

    points (V, H, W, 3) world coordinates; valid (V, H, W) bool: pixels that have a point (every pixel for the
    dense initialisers); colors (V, H, W, 3) in [0, 1]; depth (V, H, W) z-depth in each view (0 where invalid);
    confidence (V, H, W) in [0, 1]: how much the method trusts each depth (1 for GT depth, the match score of
    confident MVS pixels, 0 for filled-in pixels) -- recorded, never used to drop a pixel; cameras: the train
    cameras (same frame).
    Pose-free initialisers (``pose_free = True``) return the cameras they recovered.
    """

    points: torch.Tensor
    valid: torch.Tensor
    colors: torch.Tensor
    depth: torch.Tensor
    cameras: Cameras
    method: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    confidence: Optional[torch.Tensor] = None

    def __post_init__(self) -> None:
        V, H, W = self.valid.shape
        if self.confidence is None:
            self.confidence = self.valid.float()
        for name, shape in (("points", (V, H, W, 3)), ("colors", (V, H, W, 3)), ("depth", (V, H, W)),
                            ("confidence", (V, H, W))):
            if tuple(getattr(self, name).shape) != shape:
                raise InputError(f"init.{name}", f"expected {shape}, got {tuple(getattr(self, name).shape)}")
        if len(self.cameras) != V or (self.cameras.width, self.cameras.height) != (W, H):
            raise InputError("init.cameras", "cameras do not match the point map")
        if not self.valid.any():
            raise InputError(f"init.{self.method or 'valid'}", "no valid point in the initialisation")

    @property
    def num_points(self) -> int:
        return int(self.valid.sum())

    @property
    def coverage(self) -> float:
        """Fraction of pixels that have a point."""
        return float(self.valid.float().mean())

    def pooled(self, block: int) -> "PointInit":
        """One point per ``block`` x ``block`` pixel block (the Gaussian grid of stride ``block``): the mean of
        the block's valid points, colours, depths and confidences.

        A block is valid when any of its pixels is (no block is dropped for being partly valid). The cameras are
        rescaled to the block grid. The image size must be divisible by ``block``.
        """
        if block == 1:
            return self
        V, H, W = self.valid.shape
        if H % block or W % block:
            raise InputError("init.block", f"{W}x{H} is not divisible by block {block}")
        v = self.valid.float()[:, None]
        pool = lambda t: F.avg_pool2d(t, block)  # noqa: E731
        frac = pool(v)
        denom = frac.clamp_min(1e-12)
        pts = pool(self.points.permute(0, 3, 1, 2) * v) / denom
        cols = pool(self.colors.permute(0, 3, 1, 2) * v) / denom
        dep = pool(self.depth[:, None] * v) / denom
        conf = pool(self.confidence[:, None] * v) / denom
        valid = frac[:, 0] > 0
        return PointInit(
            points=pts.permute(0, 2, 3, 1).contiguous(),
            valid=valid,
            colors=cols.permute(0, 2, 3, 1).contiguous(),
            depth=dep[:, 0] * valid,
            cameras=self.cameras.resized(W // block, H // block),
            method=self.method,
            meta={**self.meta, "block": block},
            confidence=conf[:, 0] * valid,
        )


class Initialiser(ABC):
    """Turns the train views of a scene into a ``PointInit``. Config comes from ``init.<name>``."""

    name: str = "abstract"

    @abstractmethod
    def __call__(self, train: Scene) -> PointInit:
        ...
