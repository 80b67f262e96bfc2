"""A scene's catalogue: its cameras and where its pixels are, without decoding them (lazy loading).

A :class:`SceneCatalogue` is what a format's ``load`` returns: every view's camera (at the native resolution of
the image files, after undistortion to a pinhole), names, depth range, sparse/GT points and meta, plus per view
the files to decode (image, optional mask, optional GT depth) and an optional undistortion. Splits, scene
statistics and ``feat2gs data check`` need cameras only; :meth:`SceneCatalogue.load` decodes just the views asked
for, one at a time, undistorts them and resizes them on load to the working resolution, so the peak memory is
one native image plus the requested views at the working size.

``load(views, long_side, multiple)`` gives exactly the same tensors as decoding every view, then
``Scene.subset(views)`` and ``Scene.resized_long_side(long_side, multiple)``: images are area-averaged
(bilinear with antialiasing), masks and depths resized by nearest neighbour, K scaled per axis.

Masks: ``Scene.masks`` are the valid pixels; a view's mask is its dataset mask (when the format has one) AND the
pixels that undistortion could fill (when the camera was distorted).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..io.images import read_image, read_mask
from ..scene import Cameras, Scene, working_size


@dataclass
class ViewFiles:
    """The files of one view. ``size`` = (width, height) of the image file (checked on decoding);
    ``undistort`` maps the decoded image to the pinhole camera of the catalogue (see ``undistort.py``)."""

    image: Path
    size: tuple[int, int]
    mask: Optional[Path] = None
    depth: Optional[Path] = None
    undistort: Optional[object] = None  # an Undistorter: apply(image (3,H,W)) -> (image, valid (H,W))


@dataclass
class SceneCatalogue:
    """Cameras and files of a scene; pixels decoded by :meth:`load` (see the module docstring)."""

    name: str
    format: str
    cameras: Cameras  # every view, at the native resolution of the image files (pinhole)
    image_names: list[str]
    views: Optional[list[ViewFiles]] = None  # None when ``preloaded`` holds the pixels
    depth_range: Optional[torch.Tensor] = None  # (V, 2)
    points: Optional[torch.Tensor] = None
    sparse_points: Optional[torch.Tensor] = None
    units: str = "scene units"
    source: str = ""
    meta: dict = field(default_factory=dict)
    background: Optional[tuple[float, float, float]] = None  # RGBA images composited over this colour
    mask_threshold: float = 0.5
    read_depth: Optional[Callable[[Path], np.ndarray]] = None  # (H, W) z-depth, 0 / non-finite = unknown
    depth_scale: float = 1.0  # multiplies decoded depths (e.g. to the cameras' units)
    preloaded: Optional[Scene] = None  # formats whose pixels are made in memory (the synthetic scene)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        V = len(self.cameras)
        if len(self.image_names) != V:
            raise InputError(f"{self.name}.image_names", f"{len(self.image_names)} names for {V} cameras")
        if self.views is None and self.preloaded is None:
            raise InputError(self.name, "a catalogue needs view files or a preloaded scene")
        if self.views is not None and len(self.views) != V:
            raise InputError(f"{self.name}.views", f"{len(self.views)} view files for {V} cameras")
        if self.depth_range is not None and tuple(self.depth_range.shape) != (V, 2):
            raise InputError(f"{self.name}.depth_range",
                             f"expected shape ({V}, 2), got {tuple(self.depth_range.shape)}")

    @classmethod
    def from_scene(cls, scene: Scene, format: str) -> "SceneCatalogue":
        """A catalogue over a scene already in memory (``load`` then subsets and resizes it)."""
        return cls(scene.name, format, scene.cameras, list(scene.image_names), depth_range=scene.depth_range,
                   points=scene.points, sparse_points=scene.sparse_points, units=scene.units, source=scene.source,
                   meta=dict(scene.meta), preloaded=scene)

    # ------------------------------------------------------------------ facts (no decoding)
    @property
    def num_views(self) -> int:
        return len(self.cameras)

    @property
    def width(self) -> int:
        return self.cameras.width

    @property
    def height(self) -> int:
        return self.cameras.height

    @property
    def has_masks(self) -> bool:
        if self.preloaded is not None:
            return self.preloaded.masks is not None
        return any(v.mask is not None or v.undistort is not None for v in self.views)

    @property
    def has_depths(self) -> bool:
        if self.preloaded is not None:
            return self.preloaded.depths is not None
        return any(v.depth is not None for v in self.views)

    # ------------------------------------------------------------------ decoding
    def load(self, views: Optional[Sequence[int]] = None, long_side: Optional[int] = None, multiple: int = 1,
             size: Optional[tuple[int, int]] = None) -> Scene:
        """Decode ``views`` (indices into the catalogue; default all) as a :class:`Scene` whose views are in
        that order, resized to ``size`` = (width, height) or to ``long_side`` (sides rounded to ``multiple``)."""
        idx = list(range(self.num_views)) if views is None else _check_views(views, self.num_views)
        if size is not None:
            w, h = int(size[0]), int(size[1])
        elif long_side:
            w, h = working_size(self.width, self.height, int(long_side), int(multiple or 1))
        else:
            w, h = self.width, self.height
        if w <= 0 or h <= 0:
            raise InputError("resolution", f"bad target size {w}x{h}")
        meta = _remap_splits(self.meta, idx, self.num_views)
        if self.preloaded is not None:
            s = self.preloaded if views is None else self.preloaded.subset(idx)
            return replace(s.resized(w, h), meta=meta)

        n = len(idx)
        images = torch.empty((n, 3, h, w), dtype=torch.float32)
        picked = [self.views[i] for i in idx]
        masks = torch.ones((n, h, w), dtype=torch.bool) if any(
            v.mask is not None or v.undistort is not None for v in picked) else None
        depths = torch.zeros((n, h, w), dtype=torch.float32) if any(v.depth is not None for v in picked) else None
        for k, v in enumerate(picked):
            img = read_image(v.image, self.background)
            if (img.shape[2], img.shape[1]) != tuple(v.size):
                raise InputError(str(v.image), f"image is {img.shape[2]}x{img.shape[1]} but its camera is for "
                                               f"{v.size[0]}x{v.size[1]} images")
            valid = None
            if v.undistort is not None:
                img, valid = v.undistort.apply(img)
            images[k] = _resize_images(img[None], w, h)[0]
            H0, W0 = img.shape[1:]
            if masks is not None:
                m = torch.ones((H0, W0), dtype=torch.bool) if valid is None else valid
                if v.mask is not None:
                    dm = read_mask(v.mask, self.mask_threshold)
                    if tuple(dm.shape) != (H0, W0):
                        raise InputError(str(v.mask), f"mask is {dm.shape[1]}x{dm.shape[0]} but the image is "
                                                      f"{W0}x{H0}")
                    if v.undistort is not None:
                        dm = v.undistort.apply_nearest(dm)
                    m = m & dm
                masks[k] = _resize_nearest(m[None].float(), w, h)[0] > 0.5
            if depths is not None and v.depth is not None:
                d = self._decode_depth(v.depth, W0, H0)
                if v.undistort is not None:
                    d = v.undistort.apply_nearest(d)
                depths[k] = _resize_nearest(d[None], w, h)[0]
        cams = self.cameras.subset(idx)
        if (w, h) != (self.width, self.height):
            cams = cams.resized(w, h)
        pick = lambda t: None if t is None else t[torch.as_tensor(idx, dtype=torch.long)].clone()  # noqa: E731
        return Scene(name=self.name, images=images, cameras=cams, image_names=[self.image_names[i] for i in idx],
                     masks=masks, depths=depths, points=self.points, sparse_points=self.sparse_points,
                     depth_range=pick(self.depth_range), units=self.units, source=self.source, meta=meta)

    def _decode_depth(self, path: Path, W: int, H: int) -> torch.Tensor:
        if self.read_depth is None:
            raise InputError(str(path), "this format has no depth reader")
        d = np.asarray(self.read_depth(path), dtype=np.float32)
        if d.ndim != 2:
            raise InputError(str(path), f"depth map must be 2-D, got shape {d.shape}")
        d = np.where(np.isfinite(d) & (d > 0), d, 0.0).astype(np.float32) * np.float32(self.depth_scale)
        t = torch.from_numpy(d)
        if tuple(t.shape) != (H, W):
            if abs((t.shape[1] / t.shape[0]) / (W / H) - 1) > 0.02:
                raise InputError(str(path), f"depth map is {t.shape[1]}x{t.shape[0]} but the image is {W}x{H} "
                                            "(aspect ratios differ)")
            t = _resize_nearest(t[None], W, H)[0]
        return t


def _check_views(views: Sequence[int], n: int) -> list[int]:
    out = [int(i) for i in views]
    bad = [i for i in out if not 0 <= i < n]
    if bad:
        raise InputError("views", f"view indices {bad} out of range for a scene of {n} views")
    if len(set(out)) != len(out):
        raise InputError("views", f"repeated view indices in {out}")
    return out


def _remap_splits(meta: dict, idx: list[int], total: int) -> dict:
    """``meta`` with ``meta['splits']`` re-indexed to the loaded views (splits using other views are dropped)."""
    out = dict(meta)
    splits = meta.get("splits")
    if not splits or idx == list(range(total)):
        return out
    pos = {v: k for k, v in enumerate(idx)}
    kept = {}
    for name, s in splits.items():
        used = list(s.get("train", [])) + list(s.get("test", []))
        if all(i in pos for i in used):
            kept[name] = {key: sorted(pos[i] for i in s[key]) for key in ("train", "test") if key in s}
    out["splits"] = kept
    return out


def _resize_images(images: torch.Tensor, w: int, h: int) -> torch.Tensor:
    """As :meth:`Scene.resized` resizes images (identity at the same size)."""
    if (images.shape[3], images.shape[2]) == (w, h):
        return images
    return F.interpolate(images, size=(h, w), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def _resize_nearest(t: torch.Tensor, w: int, h: int) -> torch.Tensor:
    if (t.shape[2], t.shape[1]) == (w, h):
        return t
    return F.interpolate(t[:, None].float(), size=(h, w), mode="nearest-exact")[:, 0]
