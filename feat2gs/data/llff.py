"""LLFF scenes: ``poses_bounds.npy`` + ``images[_N]/`` (+ optional COLMAP ``sparse/0``).

Format (LLFF's ``imgs2poses``): one row of 17 numbers per image, in sorted-file-name order. The first 15 are a
3x5 matrix ``[R | t | hwf]``: R and t are camera-to-world (COLMAP's world frame, unscaled), with R's columns
the camera's [down, right, back] axes; hwf = (height, width, focal) of the full-resolution images the poses
were computed on. The last two numbers are the near/far z-depth bounds of the view (from the SfM points).

Conversion: OpenCV camera-to-world = ``[R[:, 1], R[:, 0], -R[:, 2] | t]`` (right, down, forward), inverted to
the world-to-camera ``viewmats``. Intrinsics for images of size W x H: ``fx = f W / w0``, ``fy = f H / h0``,
principal point at the image centre ``(W / 2, H / 2)``. LLFF drops COLMAP's principal point and assumes it at
the centre; COLMAP (which ran with a fixed principal point here: cameras.bin holds exactly (w0/2, h0/2)) puts
pixel centres at +0.5, so the centre of the image is exactly W/2 in our convention and these intrinsics are
exact for any downsampling -- no half-pixel correction is needed. COLMAP's radial distortion (SIMPLE_RADIAL
k) is ignored, as in every LLFF/NeRF pipeline; it is reported in ``meta['colmap_camera']``.

``depth_range`` = the per-view bounds. ``sparse_points`` = ``sparse/0/points3D.bin`` when present, checked to be
in the poses' world frame (LLFF does not move the world), colours in ``meta['sparse_colors']``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from ..errors import InputError
from ..io.colmap import read_cameras_bin, read_points3d_bin
from ..io.images import list_images
from ..scene import Scene
from .catalogue import SceneCatalogue, ViewFiles
from .common import (check_array, check_same_frame, checked_rotation, common_image_size, invert_rigid, load_npy,
                     make_K, to_cameras, viewmat)
from .formats import SceneFormat, register_format

POSES_FILE = "poses_bounds.npy"
_DOWNSAMPLED = re.compile(r"^images_(\d+)$")


def downsampled_folders(root: Path) -> dict[int, Path]:
    """``{N: root/images_N}`` for every downsampled image folder present (N >= 1)."""
    out = {}
    for p in root.iterdir() if root.is_dir() else []:
        m = _DOWNSAMPLED.match(p.name)
        if m and p.is_dir() and int(m.group(1)) >= 1:
            out[int(m.group(1))] = p
    return out


def pick_image_folder(root: Path, images: Optional[Union[str, Path]] = None, factor: Optional[int] = None) -> Path:
    """The image folder to load: ``images`` (a folder name under root, or a path), else ``images_<factor>``
    (``factor=1``: ``images``), else the most downsampled ``images_N`` present, else ``images``."""
    if images is not None and factor is not None:
        raise InputError("images", "give either images= or factor=, not both")
    if images is not None:
        p = Path(images)
        folder = p if p.is_absolute() else root / p
    elif factor is not None:
        if int(factor) < 1:
            raise InputError("factor", f"must be >= 1, got {factor}")
        folder = root / ("images" if int(factor) == 1 else f"images_{int(factor)}")
    else:
        found = downsampled_folders(root)
        folder = found[max(found)] if found else root / "images"
    if not folder.is_dir():
        raise InputError(str(folder), "image folder not found")
    return folder


@register_format
class LLFFFormat(SceneFormat):
    name = "llff"
    markers = (POSES_FILE,)
    description = "LLFF: poses_bounds.npy + images_N/"

    def detect(self, root: Path) -> int:
        """2 for poses_bounds.npy; 3 when the COLMAP model it was made from is there too (nerf_llff_data ships
        both): the LLFF reading wins over the plain COLMAP one unless ``scene.format=colmap``."""
        if not (root / POSES_FILE).is_file():
            return 0
        return 3 if any((root / d / f"images{e}").is_file() for d in ("sparse/0", "sparse") for e in (".bin", ".txt")) \
            else 2

    def load(self, root: Path, images: Optional[Union[str, Path]] = None, factor: Optional[int] = None,
             sparse: bool = True, name: Optional[str] = None) -> SceneCatalogue:
        return catalogue_llff(root, images, factor, sparse, name)


def load_llff(path: Union[str, Path], **options) -> Scene:
    """Load an LLFF scene folder, every view decoded (options as :func:`catalogue_llff`)."""
    return catalogue_llff(path, **options).load()


def catalogue_llff(path: Union[str, Path], images: Optional[Union[str, Path]] = None, factor: Optional[int] = None,
                   sparse: bool = True, name: Optional[str] = None) -> SceneCatalogue:
    """Catalogue of an LLFF scene folder (see the module docstring for the conventions).

    ``images`` / ``factor`` pick the image folder (default: the most downsampled ``images_N``);
    ``sparse=False`` skips ``sparse/0/points3D.bin``.
    """
    root = Path(path)
    pb_path = root / POSES_FILE
    arr = load_npy(pb_path)
    arr = check_array(arr, (None, 17), str(pb_path))
    n = arr.shape[0]
    if n == 0:
        raise InputError(str(pb_path), "no poses")
    mats = arr[:, :15].reshape(n, 3, 5)
    bounds = arr[:, 15:17]

    folder = pick_image_folder(root, images, factor)
    files = list_images(folder)
    if len(files) != n:
        raise InputError(str(folder), f"{len(files)} images but {pb_path.name} has {n} poses (one per image needed)")
    W, H = common_image_size(files)

    hwf = mats[:, :, 4]
    Ks, vms = [], []
    for i in range(n):
        where = f"{pb_path}[{i}]"
        h0, w0, f = hwf[i]
        if min(h0, w0, f) <= 0:
            raise InputError(f"{where}.hwf", f"height, width and focal must be positive, got {hwf[i].tolist()}")
        if abs((W / H) / (w0 / h0) - 1) > 0.02:
            raise InputError(str(folder), f"images are {W}x{H} but {pb_path.name} row {i} is for {w0:g}x{h0:g} "
                                          "images (aspect ratios differ)")
        Ks.append(make_K(f * W / w0, f * H / h0, W / 2.0, H / 2.0))
        R_llff, t = mats[i, :, :3], mats[i, :, 3]
        R_c2w = checked_rotation(np.stack([R_llff[:, 1], R_llff[:, 0], -R_llff[:, 2]], 1), f"{where}.R")
        vms.append(invert_rigid(viewmat(R_c2w, t)))
        near, far = bounds[i]
        if not 0 < near < far:
            raise InputError(f"{where}.bounds", f"need 0 < near < far, got near={near:g}, far={far:g}")
    cameras = to_cameras(np.stack(Ks), np.stack(vms), W, H, str(pb_path))

    meta: dict = {"format": "llff", "image_dir": str(folder), "full_size": (float(hwf[0, 1]), float(hwf[0, 0]))}
    sparse_points = None
    sparse_dir = root / "sparse" / "0"
    cams_bin = sparse_dir / "cameras.bin"
    if cams_bin.is_file():
        cams = read_cameras_bin(cams_bin)
        meta["colmap_camera"] = [
            {"model": c.model, "width": c.width, "height": c.height, "params": c.params.tolist(),
             "distortion": c.distortion.tolist()} for c in cams.values()]
    pts_bin = sparse_dir / "points3D.bin"
    if sparse and pts_bin.is_file():
        pts = read_points3d_bin(pts_bin)
        if len(pts):
            sparse_points = torch.from_numpy(pts.xyz.astype(np.float32))
            meta["sparse_check"] = check_same_frame(cameras, sparse_points, str(pts_bin))
            meta["sparse_colors"] = torch.from_numpy(pts.rgb.copy())
    return SceneCatalogue(
        name=name or root.resolve().name,
        format="llff",
        cameras=cameras,
        image_names=[p.name for p in files],
        views=[ViewFiles(p, (W, H)) for p in files],
        sparse_points=sparse_points,
        depth_range=torch.from_numpy(bounds.astype(np.float32)),
        units="COLMAP world units (arbitrary scale)",
        source=f"llff:{root}",
        meta=meta,
    )
