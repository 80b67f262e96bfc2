"""Pose-free initialisers: the shared part (input checks, the on-disk cache, the PointInit, test-view
registration, what the pipeline calls).

A pose-free initialiser reconstructs cameras and per-pixel depth from the *images alone* (``reconstruct``
never sees a scene's cameras: it gets the image tensor and the view names). The pipeline then trains with the
recovered train cameras; the dataset poses are only used to score them (``posefree.metrics.pose_metrics``)
and, for the test views, replaced by ``register``: train + test views are reconstructed jointly by the same
method and brought into the train-only frame by a Umeyama similarity (``posefree.register``).

Cache: one file per (method, options, images) under ``cache_dir`` (default ``init/`` under feat2gs's cache
root), a ``feat2gs.scene_cache.TensorFileCache``, written atomically; a sweep over backbones and modes computes each
scene + split's reconstruction (and the joint one for registration) once.
"""

from __future__ import annotations

import hashlib
import json
from abc import abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import torch

from ..errors import InputError
from ..feature_cache import canonical_json, image_digest
from ..paths import cache_root
from ..scene_cache import TensorFileCache
from ..init.base import Initialiser, PointInit
from ..init.dataset import point_init_from_depth
from ..scene import Cameras, Scene
from .metrics import pose_metrics
from .register import register_views

CACHE_VERSION = 1


@dataclass
class Reconstruction:
    """Cameras and per-pixel z-depth (0 = none) of V views at the images' resolution, a confidence per pixel
    (None when the method has none), optional sparse points (M, 3) and, for DUSt3R-style methods, the
    per-pixel points used for registration (V, H, W, 3; world frame)."""

    cameras: Cameras
    depth: torch.Tensor
    valid: torch.Tensor
    confidence: Optional[torch.Tensor] = None
    sparse_points: Optional[torch.Tensor] = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def points(self) -> torch.Tensor:
        return self.cameras.unproject(self.depth)

    def to_state(self) -> dict:
        return {"K": self.cameras.K, "viewmats": self.cameras.viewmats,
                "size": [self.cameras.width, self.cameras.height],
                "depth": self.depth, "valid": self.valid, "confidence": self.confidence,
                "sparse_points": self.sparse_points, "meta": json.dumps(self.meta), "version": CACHE_VERSION}

    @classmethod
    def from_state(cls, st: dict) -> "Reconstruction":
        cams = Cameras(st["K"], st["viewmats"], int(st["size"][0]), int(st["size"][1]))
        return cls(cams, st["depth"], st["valid"].bool(), st["confidence"], st["sparse_points"], json.loads(st["meta"]))


def default_init_cache_dir() -> Path:
    """``init/`` under feat2gs's cache root (``feat2gs.paths.cache_root``)."""
    return cache_root() / "init"


def check_views(images: torch.Tensor, names: list[str], where: str) -> None:
    """One clear error for inputs no pose-free method can handle: fewer than two views, identical views."""
    V = images.shape[0]
    if V < 2:
        raise InputError(where, f"a pose-free reconstruction needs at least 2 views, got {V} ({names})")
    flat = images.reshape(V, -1)
    for i in range(V):
        for j in range(i + 1, V):
            if float((flat[i] - flat[j]).abs().max()) < 1e-6:
                raise InputError(where, f"views {names[i]!r} and {names[j]!r} are identical images: "
                                        "no baseline, the cameras cannot be recovered")


class PoseFreeInitialiser(Initialiser):
    """Base of ``dust3r`` / ``mast3r`` / ``colmap``: subclasses implement ``_reconstruct`` and
    ``cache_options``; ``register_points`` may give per-pixel correspondences for registration."""

    pose_free = True
    shared_intrinsics = False  # True: all views come from one camera (test views get the train intrinsics)
    register_points_needed = True  # False: the joint run for registration needs cameras only

    def __init__(self, cache: bool = True, cache_dir: Optional[str] = None):
        self.cache = bool(cache)
        self.cache_dir = cache_dir

    # ------------------------------------------------------------------ to implement
    @abstractmethod
    def _reconstruct(self, images: torch.Tensor, names: list[str], masks: Optional[torch.Tensor],
                     dense: bool = True) -> Reconstruction:
        """``dense=False``: only the cameras are needed (registration runs); methods may skip dense depth."""

    @abstractmethod
    def cache_options(self) -> dict:
        """Everything that changes the result (method name, options, weights fingerprint)."""

    # ------------------------------------------------------------------ shared
    def reconstruct(self, images: torch.Tensor, names: list[str], masks: Optional[torch.Tensor] = None,
                    dense: bool = True) -> Reconstruction:
        """Cameras + depth of ``images`` (V, 3, H, W) in [0, 1], cached on disk."""
        check_views(images, names, f"init.{self.name}")
        key = hashlib.sha256(canonical_json({"dense": bool(dense),
            "version": CACHE_VERSION, "options": self.cache_options(), "images": image_digest(images),
            "masks": None if masks is None else image_digest(masks.float())}).encode()).hexdigest()[:32]
        cache = TensorFileCache(Path(self.cache_dir) if self.cache_dir else default_init_cache_dir(), self.cache)
        state = cache.load(key)
        if state is not None:
            rec = Reconstruction.from_state(state)
            rec.meta["cache"] = {"hit": True, "path": str(cache.path(key))}
            return rec
        rec = self._reconstruct(images, names, masks, dense)
        cache.store(key, rec.to_state())
        rec.meta["cache"] = {"hit": False, "path": str(cache.path(key)) if self.cache else None}
        return rec

    def __call__(self, train: Scene) -> PointInit:
        rec = self.reconstruct(train.images, list(train.image_names), train.masks)
        posed = replace(train, cameras=rec.cameras)
        init = point_init_from_depth(posed, rec.depth, rec.valid, self.name, meta=dict(rec.meta))
        init.confidence = self.unit_confidence(rec)
        return init

    def unit_confidence(self, rec: Reconstruction) -> Optional[torch.Tensor]:
        """The per-pixel confidence in [0, 1] for ``PointInit`` (0 where invalid); the reconstruction keeps the
        method's own scale (DUSt3R's conf >= 1, used to weight the registration)."""
        if rec.confidence is None:
            return None
        return rec.confidence.clamp(0, 1) * rec.valid

    def register_points(self, joint: Reconstruction, ref: Reconstruction, n_train: int):
        """(src, dst, weights) correspondences between the joint run's train views and the train-only run, or
        None to register from the cameras alone."""
        return None

    def register(self, train: Scene, test: Scene) -> tuple[Cameras, Optional[torch.Tensor], dict]:
        """Test cameras in the frame of the train-only reconstruction (joint reconstruction + sim(3)), and the
        test views' depth from the joint run in that frame (scaled by the similarity; None when the joint run
        has no dense depth)."""
        ref = self.reconstruct(train.images, list(train.image_names), train.masks)
        images = torch.cat([train.images, test.images])
        names = list(train.image_names) + list(test.image_names)
        masks = None if train.masks is None or test.masks is None else torch.cat([train.masks, test.masks])
        joint = self.reconstruct(images, names, masks, dense=self.register_points_needed)
        n = train.num_views
        corr = self.register_points(joint, ref, n)
        kw = {} if corr is None else {"src_points": corr[0], "dst_points": corr[1], "weights": corr[2]}
        idx_train, idx_test = list(range(n)), list(range(n, n + test.num_views))
        cams, sim, info = register_views(joint.cameras.subset(idx_train), joint.cameras.subset(idx_test),
                                         ref.cameras, **kw)
        info["from"] = "points" if corr is not None else "cameras"
        if self.shared_intrinsics:
            # one physical camera: the test views get the train-only reconstruction's intrinsics (the frame the
            # Gaussians are trained in), not the joint run's
            K = ref.cameras.K.mean(0, keepdim=True).expand(len(cams), -1, -1).clone()
            info["joint_focal_px"] = [float(f) for f in cams.K[:, 0, 0]]
            cams = Cameras(K, cams.viewmats, cams.width, cams.height)
        depth = None
        if joint.valid[n:].any():
            depth = joint.depth[n:] * joint.valid[n:] * float(sim.scale)
        return cams, depth, info


def posefree_scenes(initialiser: PoseFreeInitialiser, init: PointInit, train: Scene, test: Scene
                    ) -> tuple[Scene, Scene, dict]:
    """What the pipeline does with a pose-free initialiser: the train scene with the recovered cameras, the
    test scene with registered cameras, and the pose metrics against the dataset poses (scoring only).

    The dataset depths are dropped from both (they are in the dataset's frame, not the recovered one); the test
    views get the joint reconstruction's depth instead when it has one, so the evaluation mask is the
    depth-consistency of the reconstruction's test depth with the train views' (as the reference), else the
    splat of the initialisation's points."""
    train_pf = replace(train, cameras=init.cameras.resized(train.width, train.height), depths=None)
    info: dict[str, Any] = {"train": pose_metrics(train_pf.cameras, train.cameras) if train.num_views >= 2 else None}
    if test.num_views:
        cams, depth, reg = initialiser.register(train, test)
        test_pf = replace(test, cameras=cams.resized(test.width, test.height), depths=depth)
        info["registration"] = reg
        # registered test cameras against the dataset's, in the dataset frame via the train-view similarity
        both = Cameras(torch.cat([train_pf.cameras.K, test_pf.cameras.K]),
                       torch.cat([train_pf.cameras.viewmats, test_pf.cameras.viewmats]), train.width, train.height)
        ref = Cameras(torch.cat([train.cameras.K, test.cameras.K]),
                      torch.cat([train.cameras.viewmats, test.cameras.viewmats]), train.width, train.height)
        info["train_and_test"] = pose_metrics(both, ref)
    else:
        test_pf = test
    return train_pf, test_pf, info
