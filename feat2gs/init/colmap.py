"""``init=colmap``: weight-free pose-free initialisation -- pycolmap structure-from-motion on the views, then
dense depth from the ``mvs`` initialiser on the recovered cameras.

1. The images are written as PNG to a temporary folder (at the resolution given: the working resolution).
2. SIFT features on the CPU (``max_num_features``, ``peak_threshold``), one shared ``SIMPLE_PINHOLE`` camera
   (``single_camera``; principal point at the centre, focal from COLMAP's prior refined by bundle adjustment),
   exhaustive matching with geometric verification, incremental mapping (one model, ``min_tri_angle`` degrees
   for the initial pair: forward-facing captures such as LLFF have small baselines, COLMAP's 16 would reject
   them). Deterministic: pycolmap's random seed is fixed and ``num_threads`` defaults to 1.
3. Every view must be registered: otherwise an InputError names the views COLMAP could not register.
4. Dense depth: ``build_initialiser("mvs", **mvs_options)`` on a scene holding the recovered cameras and the
   SfM points (its depth range comes from the points each view sees); nothing of the dataset's geometry
   (poses, bounds, depth, SfM points) is used.

Test views are registered by a joint COLMAP run on train + test and a Umeyama similarity fitted on the train
cameras (centres and points along their axes, ``posefree.register.camera_anchor_points``).
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Optional

import numpy as np
import torch

from ..errors import InputError
from ..posefree.reconstruction import PoseFreeInitialiser, Reconstruction
from ..scene import Cameras, Scene
from .base import INITIALISERS


def _pycolmap():
    try:
        import pycolmap
    except ImportError as e:  # pragma: no cover - a dependency of the project
        raise InputError("init.colmap", f"pycolmap is not installed ({e}); pip install pycolmap") from None
    return pycolmap


def run_colmap(images: torch.Tensor, names: list[str], workdir: str, max_num_features: int = 8192,
               peak_threshold: float = 0.02 / 3, min_tri_angle: float = 4.0, single_camera: bool = True,
               num_threads: int = 1, seed: int = 0):
    """SfM of ``images`` (V, 3, H, W) in [0, 1]: (Cameras in view order, SfM points (M, 3), info)."""
    from PIL import Image

    pycolmap = _pycolmap()
    V, _, H, W = images.shape
    img_dir = os.path.join(workdir, "images")
    os.makedirs(img_dir)
    files = [f"{k:04d}.png" for k in range(V)]
    for k in range(V):
        arr = (images[k].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(arr).save(os.path.join(img_dir, files[k]))
    db = os.path.join(workdir, "database.db")
    pycolmap.set_random_seed(int(seed))
    reader = pycolmap.ImageReaderOptions(camera_model="SIMPLE_PINHOLE")
    extract = pycolmap.FeatureExtractionOptions(num_threads=int(num_threads))
    extract.sift.max_num_features = int(max_num_features)
    extract.sift.peak_threshold = float(peak_threshold)
    mode = pycolmap.CameraMode.SINGLE if single_camera else pycolmap.CameraMode.PER_IMAGE
    t0 = time.perf_counter()
    pycolmap.extract_features(db, img_dir, image_names=files, camera_mode=mode, reader_options=reader,
                              extraction_options=extract, device=pycolmap.Device.cpu)
    pycolmap.match_exhaustive(db, matching_options=pycolmap.FeatureMatchingOptions(num_threads=int(num_threads)),
                              device=pycolmap.Device.cpu)
    opts = pycolmap.IncrementalPipelineOptions(num_threads=int(num_threads), min_model_size=2, multiple_models=False,
                                               random_seed=int(seed))
    opts.mapper.init_min_tri_angle = float(min_tri_angle)
    opts.mapper.random_seed = int(seed)
    out = os.path.join(workdir, "sparse")
    os.makedirs(out)
    recs = pycolmap.incremental_mapping(db, img_dir, out, options=opts)
    if not recs:
        raise InputError("init.colmap", f"COLMAP could not reconstruct the views {names} (too few matches between "
                                        "them: not enough overlap or texture)")
    rec = max(recs.values(), key=lambda r: r.num_reg_images())
    by_name = {im.name: im for im in rec.images.values() if im.has_pose}
    missing = [names[k] for k in range(V) if files[k] not in by_name]
    if missing:
        raise InputError("init.colmap", f"COLMAP could not register the views {missing} (of {names}): too few "
                                        "matches with the others")
    K = np.zeros((V, 3, 3))
    vm = np.tile(np.eye(4), (V, 1, 1))
    for k in range(V):
        im = by_name[files[k]]
        vm[k, :3, :4] = im.cam_from_world().matrix()
        cam = rec.cameras[im.camera_id]
        f, cx, cy = cam.params[:3]
        K[k] = [[f, 0, cx], [0, f, cy], [0, 0, 1]]
    pts = np.array([p.xyz for p in rec.points3D.values()]).reshape(-1, 3)
    cams = Cameras(torch.from_numpy(K).float(), torch.from_numpy(vm).float(), W, H)
    info = {"registered": V, "points": int(pts.shape[0]), "seconds": time.perf_counter() - t0,
            "focal_px": [float(f) for f in K[:, 0, 0]],
            "mean_reprojection_error": float(rec.compute_mean_reprojection_error())}
    return cams, torch.from_numpy(pts).float(), info


@INITIALISERS.register("colmap")
class ColmapInit(PoseFreeInitialiser):
    """pycolmap SfM (SIFT on CPU, exhaustive matching, incremental mapping) + dense ``mvs`` depth on the recovered
    cameras. Options: ``max_num_features`` [8192], ``peak_threshold`` [0.0067], ``min_tri_angle`` [4 degrees],
    ``single_camera`` [true], ``num_threads`` [1, deterministic], ``mvs_options`` [{}: the ``mvs`` defaults],
    ``cache`` [true], ``cache_dir``, ``seed`` [0]."""

    name = "colmap"
    register_points_needed = False  # registration uses the joint run's cameras only: no dense depth for it

    def __init__(self, max_num_features: int = 8192, peak_threshold: float = 0.02 / 3, min_tri_angle: float = 4.0,
                 single_camera: bool = True, num_threads: int = 1, mvs_options: Optional[dict] = None,
                 cache: bool = True, cache_dir: Optional[str] = None, seed: int = 0):
        super().__init__(cache, cache_dir)
        from . import build_initialiser

        self.sfm = dict(max_num_features=int(max_num_features), peak_threshold=float(peak_threshold),
                        min_tri_angle=float(min_tri_angle), single_camera=bool(single_camera),
                        num_threads=int(num_threads), seed=int(seed))
        self.shared_intrinsics = bool(single_camera)
        self.mvs_options = dict(mvs_options or {})
        self._mvs = build_initialiser("mvs", **self.mvs_options)  # validates the options now

    def cache_options(self) -> dict:
        import pycolmap

        return {"method": self.name, "sfm": self.sfm, "mvs": self.mvs_options, "pycolmap": pycolmap.__version__}

    def _reconstruct(self, images: torch.Tensor, names: list[str], masks, dense: bool = True) -> Reconstruction:
        with tempfile.TemporaryDirectory(prefix="feat2gs-colmap-") as tmp:
            cams, pts, info = run_colmap(images, names, tmp, **self.sfm)
        if not dense:
            V, _, H, W = images.shape
            return Reconstruction(cams, torch.zeros(V, H, W), torch.zeros(V, H, W, dtype=torch.bool), None, pts,
                                  {"method": self.name, "sfm": info, "dense": False})
        scene = Scene(name="colmap", images=images, cameras=cams, image_names=list(names), masks=masks,
                      sparse_points=pts if pts.shape[0] else None)
        dense = self._mvs(scene)
        meta = {"method": self.name, "sfm": info, "mvs": dense.meta,
                "valid_fraction": float(dense.valid.float().mean())}
        return Reconstruction(cams, dense.depth, dense.valid, getattr(dense, "confidence", None), pts, meta)
