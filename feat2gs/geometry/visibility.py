"""Test-view visibility masks: which test pixels show geometry that the train views observed.

Computed once per (scene, split) and shared by every backbone, so all backbones are scored on the same pixels.
Two ways, picked by ``compute_visibility`` (``visibility_masks`` returns just the masks):

* ``"depth"`` (test views with depth, as in Splatt3R): a test pixel with depth d is back-projected to a
  world point X; it is valid when, for at least one train view, X lies inside that view's frustum (in front
  of the camera, projecting inside the image) and agrees with that view's depth there: one of the four train
  pixels around the projection has depth D > 0 with |z - D| <= rel_tol * D (z = depth of X in that view).
  The four-neighbour test tolerates slanted surfaces between pixel centres. Train depths are the train
  views' GT depths when present, else the initialisation's depth maps.
* ``"splat"`` (no test depth): the initialisation's valid train points are splatted into the test view
  (nearest pixel, z-buffered), and the covered set is closed morphologically (dilate then erode by
  ``closing_radius`` px) to fill the small gaps between splats; the z-buffer depth is returned beside it.

Both are intersected with the test scene's masks when it has masks (``use_masks``). Pixel centres follow
the project convention (j + 0.5, i + 0.5); depths are z-depths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..scene import Cameras, Scene
from .splat import splat_depth


# --------------------------------------------------------------------------------------------- morphology
def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary dilation of (V, H, W) masks by a (2r+1)^2 square."""
    if radius <= 0:
        return mask
    return F.max_pool2d(mask.float()[:, None], 2 * radius + 1, stride=1, padding=radius)[:, 0] > 0.5


def erode(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary erosion of (V, H, W) masks by a (2r+1)^2 square; pixels outside the image count as set."""
    if radius <= 0:
        return mask
    return ~dilate(~mask, radius)


def closing(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Morphological closing (dilate, then erode) of (V, H, W) masks: fills gaps up to ~2r pixels wide."""
    return erode(dilate(mask, radius), radius)


# --------------------------------------------------------------------------------------------- results
@dataclass
class VisibilityMasks:
    """Per-test-view masks (T, H, W) bool; ``depth`` (T, H, W) is the splatted train geometry's z-buffer
    (0 where nothing landed) for the ``"splat"`` method, None for ``"depth"``."""

    masks: torch.Tensor
    method: str
    depth: Optional[torch.Tensor] = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> list[float]:
        """Fraction of valid pixels per test view."""
        return self.masks.flatten(1).float().mean(1).tolist()


# --------------------------------------------------------------------------------------------- (a) depth
def depth_agreement_masks(test_cameras: Cameras, test_depths: torch.Tensor, train_cameras: Cameras,
                          train_depths: torch.Tensor, rel_tol: float = 0.01) -> torch.Tensor:
    """(T, H, W) bool: test pixels whose depth is seen, unoccluded, by at least one train view (see module doc)."""
    T, H, W = test_depths.shape
    if len(test_cameras) != T or (test_cameras.width, test_cameras.height) != (W, H):
        raise InputError("visibility.test_depths", f"{T} depth maps of {W}x{H} for {len(test_cameras)} cameras "
                                                   f"of {test_cameras.width}x{test_cameras.height}")
    V, h, w = train_depths.shape
    if len(train_cameras) != V or (train_cameras.width, train_cameras.height) != (w, h):
        raise InputError("visibility.train_depths", f"{V} depth maps of {w}x{h} for {len(train_cameras)} cameras "
                                                    f"of {train_cameras.width}x{train_cameras.height}")
    if rel_tol <= 0:
        raise InputError("visibility.rel_tol", f"must be > 0, got {rel_tol}")
    has_depth = test_depths > 0
    X = test_cameras.unproject(torch.where(has_depth, test_depths, torch.zeros_like(test_depths))).reshape(-1, 3)
    uv, z = train_cameras.project(X)  # (V, N, 2), (V, N)
    u, v = uv[..., 0], uv[..., 1]
    in_frustum = (z > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    flat = train_depths.reshape(V, -1).float()
    j0 = torch.floor(u - 0.5).long()
    i0 = torch.floor(v - 0.5).long()
    agree = torch.zeros_like(in_frustum)
    for di in (0, 1):
        for dj in (0, 1):
            i, j = i0 + di, j0 + dj
            inside = (i >= 0) & (i < h) & (j >= 0) & (j < w)
            idx = (i.clamp(0, h - 1) * w + j.clamp(0, w - 1))
            D = flat.gather(1, idx)
            agree |= inside & (D > 0) & ((z - D).abs() <= rel_tol * D)
    seen = (in_frustum & agree).any(0).reshape(T, H, W)
    return seen & has_depth


# --------------------------------------------------------------------------------------------- (b) splat
def splat_masks(test_cameras: Cameras, points: torch.Tensor,
                closing_radius: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """(masks, z-buffer) of the train points (N, 3) in the test views: covered pixels, closed by ``closing_radius``."""
    if points.ndim != 2 or points.shape[1] != 3 or points.shape[0] == 0:
        raise InputError("visibility.points", f"expected a non-empty (N, 3) point set, got {tuple(points.shape)}")
    zbuf = splat_depth(test_cameras, points)
    return closing(zbuf > 0, int(closing_radius)), zbuf


# --------------------------------------------------------------------------------------------- entry point
def compute_visibility(test: Scene, init: Optional[Any] = None, train: Optional[Scene] = None, *,
                       rel_tol: float = 0.01, closing_radius: int = 2, use_masks: bool = True,
                       method: str = "auto") -> VisibilityMasks:
    """Visibility masks of the ``test`` views with respect to the train views, with how they were made.

    ``init`` is the initialisation (a ``PointInit``: its cameras, depth maps and valid points) and ``train``
    the train Scene (its cameras and GT depths); give at least one. ``method``: ``"depth"`` (needs
    ``test.depths`` and train depths from ``train.depths`` or else ``init.depth``), ``"splat"`` (needs
    ``init``), or ``"auto"`` (depth when possible, else splat). ``rel_tol`` is the relative depth tolerance
    of the depth method, ``closing_radius`` (test-image pixels) the hole filling of the splat method.
    """
    if method not in ("auto", "depth", "splat"):
        raise InputError("visibility.method", f"unknown method {method!r}; use auto, depth or splat")
    if init is None and train is None:
        raise InputError("visibility", "give the initialisation (init) and/or the train scene (train)")
    train_views: Optional[tuple[Cameras, torch.Tensor]] = None
    if train is not None and train.depths is not None:
        train_views = (train.cameras, train.depths)
    elif init is not None:
        train_views = (init.cameras, init.depth)
    can_depth = test.depths is not None and train_views is not None
    if method == "auto":
        method = "depth" if can_depth else "splat"
    if method == "depth":
        if not can_depth:
            raise InputError(f"visibility ({test.name}.depths)", "the depth method needs test depths and train depths "
                                                                 "(train scene depths or an initialisation)")
        masks = depth_agreement_masks(test.cameras, test.depths, train_views[0], train_views[1], rel_tol)
        zbuf = None
    else:
        if init is None:
            raise InputError(f"visibility ({test.name})", "the splat method needs the initialisation's points (init)")
        masks, zbuf = splat_masks(test.cameras, init.points[init.valid], closing_radius)
    if use_masks and test.masks is not None:
        masks = masks & test.masks
    return VisibilityMasks(masks=masks, method=method, depth=zbuf,
                           meta={"rel_tol": rel_tol, "closing_radius": closing_radius,
                                 "used_scene_masks": bool(use_masks and test.masks is not None)})


def visibility_masks(init: Optional[Any], test: Scene, train: Optional[Scene] = None, **options: Any) -> torch.Tensor:
    """(T, H, W) bool masks of the test views; ``compute_visibility`` with the same arguments, masks only."""
    return compute_visibility(test, init=init, train=train, **options).masks
