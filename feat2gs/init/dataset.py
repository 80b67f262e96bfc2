"""``init=dataset``: the scene's own (GT) depth back-projected with its known poses.

This is the DTU protocol of Feat2GS: GT depth maps (optionally restricted to the object masks, optionally
eroded) give one world point per valid pixel; isotropic Gaussian noise of ``noise_std`` scene units can be
added to the points (the official DTU runs add 10 mm). The noise comes from a generator seeded with
``seed``, so a given (scene, noise_std, seed) always yields the same points.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from ..errors import InputError
from ..geometry.fill import fill_depth
from ..geometry.visibility import erode
from ..scene import Scene
from .base import INITIALISERS, Initialiser, PointInit


def point_init_from_depth(train: Scene, depth: torch.Tensor, valid: torch.Tensor, method: str,
                          points: Optional[torch.Tensor] = None, meta: Optional[dict[str, Any]] = None,
                          confidence: Optional[torch.Tensor] = None) -> PointInit:
    """Assemble a ``PointInit`` from per-view z-depths (V, H, W) and a validity mask.

    ``points`` (V, H, W, 3) may be given when they are not the plain back-projection of ``depth`` (e.g. noisy
    points); invalid pixels get depth 0 and the back-projected (or zero) point. Colours are the train pixels.
    """
    valid = valid.bool() & (depth > 0)
    depth = torch.where(valid, depth, torch.zeros_like(depth)).float()
    if points is None:
        points = train.cameras.unproject(depth)
    return PointInit(
        points=points.float().contiguous(),
        valid=valid,
        colors=train.images.permute(0, 2, 3, 1).contiguous(),
        depth=depth,
        cameras=train.cameras,
        method=method,
        meta=dict(meta or {}),
        confidence=None if confidence is None else torch.where(valid, confidence.float(), torch.zeros_like(depth)),
    )


def camera_depths(points: torch.Tensor, viewmats: torch.Tensor) -> torch.Tensor:
    """z-depth of per-view world points (V, H, W, 3) in their own view (viewmats (V, 4, 4) world-to-camera)."""
    R, t = viewmats[:, :3, :3], viewmats[:, :3, 3]
    return torch.einsum("vj,vhwj->vhw", R[:, 2], points) + t[:, None, None, 2]


@INITIALISERS.register("dataset")
class DatasetInit(Initialiser):
    """Known poses + the scene's GT depth.

    Options:
      noise_std (float, default 0): std of isotropic Gaussian noise added to every point, in the dataset's
        units (before the normalisation of ``feat2gs.data.frame``; the official DTU protocol: 10 mm).
      seed (int, default 0): seeds the noise generator.
      use_masks (bool, default True): keep only pixels inside ``scene.masks`` when the scene has masks.
      mask_erosion (int, default 0): erode the masks by this many pixels first (the official DTU code erodes
        with a 10x10 kernel, i.e. about 5 px at 512 px, to drop unreliable depth at silhouettes).
      fill (bool, default True): dense initialisation -- pixels without GT depth (or outside the masks) get a
        depth interpolated from the GT pixels around them (``fill_depth``) and confidence 0; False keeps only
        the GT pixels.
    """

    name = "dataset"

    def __init__(self, noise_std: float = 0.0, seed: int = 0, use_masks: bool = True, mask_erosion: int = 0,
                 fill: bool = True):
        if not noise_std >= 0:
            raise InputError("init.options.noise_std", f"must be >= 0, got {noise_std}")
        if int(mask_erosion) < 0:
            raise InputError("init.options.mask_erosion", f"must be >= 0, got {mask_erosion}")
        self.noise_std = float(noise_std)
        self.seed = int(seed)
        self.use_masks = bool(use_masks)
        self.mask_erosion = int(mask_erosion)
        self.fill = bool(fill)

    def __call__(self, train: Scene) -> PointInit:
        if train.depths is None:
            raise InputError(f"init=dataset ({train.name}.depths)",
                             "the scene has no ground-truth depth maps; use init=mvs (multi-view stereo "
                             "from the known poses) for scenes without depth")
        depth = train.depths.float()
        valid = depth > 0
        if self.use_masks and train.masks is not None:
            valid &= erode(train.masks, self.mask_erosion)
        if not valid.any():
            raise InputError(f"init=dataset ({train.name}.depths)", "no pixel has a positive depth inside the masks")
        confidence = valid.float()
        if self.fill:  # dense: pixels without GT depth get an interpolated one (confidence 0)
            depth = fill_depth(torch.where(valid, depth, torch.zeros_like(depth)), valid)
            valid = depth > 0
        points = train.cameras.unproject(torch.where(valid, depth, torch.zeros_like(depth)))
        # noise_std is in the dataset's units; the scene may be in the normalised frame (feat2gs.data.frame)
        frame_scale = float(((train.meta or {}).get("frame") or {}).get("scale", 1.0))
        if self.noise_std > 0:
            gen = torch.Generator().manual_seed(self.seed)
            noise = torch.randn(points.shape, generator=gen, dtype=torch.float32) * (self.noise_std * frame_scale)
            points = points + noise
            depth = camera_depths(points, train.cameras.viewmats)
            valid &= depth > 0
        return point_init_from_depth(
            train, depth, valid, method="dataset", points=points, confidence=confidence,
            meta={"noise_std": self.noise_std, "seed": self.seed, "mask_erosion": self.mask_erosion,
                  "used_masks": self.use_masks and train.masks is not None, "fill": self.fill,
                  "gt_fraction": float(confidence.mean())})
