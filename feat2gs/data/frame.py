"""The normalised world frame: every scene is mapped to an O(1) frame before anything else sees it.

Learning rates, the warm-up regression targets, depth tolerances and the heads' absolute position outputs all
live in world units, so a scene in millimetres (DTU) and the same scene in metres would otherwise train
differently. ``scene_frame`` picks a similarity ``x_n = scale * (x - centre)`` (no rotation) from what the
dataset says about its scale, ``apply_frame`` applies it to the whole scene (cameras, depths, points, depth
ranges), and ``Frame`` maps lengths back to the dataset's units for reporting (3D metrics in mm for DTU).

How the frame is chosen (``method``), first that applies:

* ``sphere``: the loader's bounding sphere (``meta["bounding_sphere"] = (centre, radius)``; IDR/NeuS'
  ``scale_mat``) becomes the unit sphere -- the NeuS normalisation the Feat2GS DTU protocol uses up to a
  constant.
* ``bbox``: the loader's bounding box (``meta["bbox"] = (lo, hi)``; Middlebury's README): its centre goes to
  the origin and its half diagonal to 1.
* ``depth``: the centroid of all camera centres goes to the origin and the median scene depth to 1. The depth
  is the median of the GT depths when the scene has them, else of the SfM points' depths in the views that
  see them, else of the per-view ``depth_range`` mid-points (geometric mean of near and far).
* ``cameras``: the centroid of the camera centres goes to the origin and their mean distance from it to 1
  (no depth information at all).
* ``none`` (``scene.normalize=false``): identity.

All cameras of the scene are used (poses are inputs, not test data), so the frame does not depend on the
split, and a scene scaled by any factor maps to the same normalised frame.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional

import torch

from ..errors import InputError
from ..scene import Cameras, Scene

FRAME_METHODS = ("auto", "sphere", "bbox", "depth", "cameras", "none")


@dataclass(frozen=True)
class Frame:
    """``x_normalised = scale * (x_dataset - centre)``."""

    scale: float
    centre: tuple[float, float, float]
    method: str
    units: str  # the dataset's units, what ``to_dataset`` lengths are in

    def to_dataset(self, length: float) -> float:
        """A length in the normalised frame, in dataset units."""
        return float(length) / self.scale

    def points_to_dataset(self, points: torch.Tensor) -> torch.Tensor:
        return points / self.scale + torch.tensor(self.centre, dtype=points.dtype, device=points.device)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Frame":
        """The inverse of ``as_dict``."""
        return cls(float(d["scale"]), tuple(float(x) for x in d["centre"]), d["method"], d["dataset_units"])

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "scale": self.scale, "centre": list(self.centre),
                "dataset_units": self.units,
                "transform": "x_normalised = scale * (x_dataset - centre)"}


IDENTITY_UNITS = "scene units"


def _median_depth(scene: Scene) -> Optional[float]:
    if scene.depths is not None and (scene.depths > 0).any():
        return float(scene.depths[scene.depths > 0].double().median())
    if scene.sparse_points is not None and scene.sparse_points.shape[0] >= 10:
        uv, z = scene.cameras.project(scene.sparse_points.float())
        u, v = uv[..., 0], uv[..., 1]
        seen = (z > 0) & (u >= 0) & (u <= scene.width) & (v >= 0) & (v <= scene.height)
        if int(seen.sum()) >= 10:
            return float(z[seen].double().median())
    if scene.depth_range is not None:
        near, far = scene.depth_range[:, 0].double(), scene.depth_range[:, 1].double()
        ok = (near > 0) & (far > near)
        if ok.any():
            return float((near[ok] * far[ok]).sqrt().median())
    return None


def scene_frame(scene: Scene, method: str = "auto", cameras: Optional[Cameras] = None) -> Frame:
    """The normalising similarity of ``scene`` (see the module docstring). ``cameras``: every camera of the
    scene when ``scene`` holds only some views (lazy loading), for the centroid and spread."""
    if method not in FRAME_METHODS:
        raise InputError("scene.normalize", f"unknown frame {method!r}; use one of {', '.join(FRAME_METHODS)}")
    units = scene.units or IDENTITY_UNITS
    C = (cameras if cameras is not None else scene.cameras).centers.double()
    meta = scene.meta or {}
    if method == "none":
        return Frame(1.0, (0.0, 0.0, 0.0), "none", units)
    if method in ("auto", "sphere") and meta.get("bounding_sphere") is not None and not meta.get("normalized"):
        centre, radius = meta["bounding_sphere"]
        return _frame(centre, 1.0 / float(radius), "sphere", units)
    if method == "sphere":
        raise InputError("scene.normalize", f"{scene.name} has no bounding sphere (only IDR/NeuS scenes do)")
    if method in ("auto", "bbox") and meta.get("bbox") is not None:
        lo, hi = (torch.tensor(c, dtype=torch.float64) for c in meta["bbox"])
        return _frame(((lo + hi) / 2).tolist(), 2.0 / float((hi - lo).norm()), "bbox", units)
    if method == "bbox":
        raise InputError("scene.normalize", f"{scene.name} has no bounding box")
    centre = C.mean(0).tolist()
    if method in ("auto", "depth"):
        d = _median_depth(scene)
        if d is not None and d > 0:
            return _frame(centre, 1.0 / d, "depth", units)
        if method == "depth":
            raise InputError("scene.normalize", f"{scene.name} has no depth information (GT depth, sparse points "
                                                "or depth range)")
    spread = float((C - C.mean(0)).norm(dim=1).mean()) if len(C) > 1 else 0.0
    if spread <= 1e-12:
        return Frame(1.0, (0.0, 0.0, 0.0), "none", units)
    return _frame(centre, 1.0 / spread, "cameras", units)


def _frame(centre, scale: float, method: str, units: str) -> Frame:
    if not (scale > 0 and scale < float("inf")):
        raise InputError("scene.normalize", f"degenerate {method} frame (scale {scale})")
    return Frame(float(scale), tuple(float(c) for c in centre), method, units)


def _similarity(scene: Scene, scale: float, centre: torch.Tensor) -> Scene:
    """The scene under ``x -> scale * (x - centre)``: cameras, depths, points, depth ranges, bounding sphere/box."""
    s, c = float(scale), centre.double()
    vm = scene.cameras.viewmats.double().clone()
    # x_cam = R x + t = R (x_n / s + c) + t  ->  s x_cam = R x_n + s (R c + t)
    vm[:, :3, 3] = s * (vm[:, :3, :3] @ c + vm[:, :3, 3])
    cams = Cameras(scene.cameras.K.clone(), vm.float(), scene.cameras.width, scene.cameras.height)
    pts = lambda p: None if p is None else ((p.double() - c) * s).float()  # noqa: E731
    meta = dict(scene.meta)
    if meta.get("bounding_sphere") is not None:
        sphere_centre, radius = meta["bounding_sphere"]
        meta["bounding_sphere"] = (((torch.tensor(sphere_centre, dtype=torch.float64) - c) * s).tolist(), radius * s)
    if meta.get("bbox") is not None:
        meta["bbox"] = tuple(((torch.tensor(b, dtype=torch.float64) - c) * s).tolist() for b in meta["bbox"])
    return replace(scene, cameras=cams,
                   depths=None if scene.depths is None else scene.depths * s,
                   points=pts(scene.points), sparse_points=pts(scene.sparse_points),
                   depth_range=None if scene.depth_range is None else scene.depth_range * s, meta=meta)


def apply_frame(scene: Scene, frame: Frame) -> Scene:
    """The scene in the normalised frame: camera centres, depths, points and depth ranges mapped by ``frame``."""
    if frame.method == "none" and frame.scale == 1.0:
        return scene
    out = _similarity(scene, frame.scale, torch.tensor(frame.centre, dtype=torch.float64))
    out.meta["frame"] = frame.as_dict()
    out.units = f"normalised ({frame.method} frame; x {1 / frame.scale:.6g} = {frame.units})"
    return out


def scale_scene(scene: Scene, factor: float) -> Scene:
    """The same scene with every length multiplied by ``factor`` (a change of units; for tests and tools)."""
    return _similarity(scene, factor, torch.zeros(3, dtype=torch.float64))
