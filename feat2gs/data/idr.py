"""IDR / NeuS scenes (DTU, BlendedMVS in NeuS's packaging): ``cameras_sphere.npz`` (NeuS) or ``cameras.npz``
(IDR) + ``image/`` + optional ``mask/``.

Cameras: ``world_mat_i`` (4x4, or 3x4) = P = K [R | t] up to scale, mapping world points to pixels of the
stored images; ``scale_mat_i`` maps the unit sphere around the object to the world. K, R, t are recovered by an
RQ decomposition of P[:, :3] with the signs fixed so K has a positive diagonal and R is a proper rotation
(P may carry any non-zero scale, including a negative one); K is normalised so K[2, 2] = 1. A skew term is kept
in ``meta['max_abs_skew']`` and set to zero in K when it is below ``max_skew`` pixels (DTU: ~1e-4 px), since
the renderers take fx, fy, cx, cy only; a larger skew is an InputError.

Pixel convention: the K of these files is used as stored. For the DTU scenes the file says it was rescaled
from 1600x1200 by multiplying the first two rows by 0.25, which is exact in our pixel-centre convention; if
DTU's original calibration put pixel centres at integer coordinates instead, the rescaled principal point is off
by 0.125 px at 400x300 -- far below the calibration's own accuracy, so no correction is applied.

World frame: the dataset's (millimetres for DTU) by default; ``normalize=True`` uses the unit-sphere frame of
NeuS instead (world = scale_mat @ normalised). ``depth_range`` is the z-range of the bounding sphere
(``scale_mat`` applied to the unit sphere) in each camera; ``meta['scale_mat']`` is scale_mat_0.

Masks: ``mask/`` files are matched to images by the integer value of their stems (DTU: ``000012.png`` <->
``012.png``); a binary threshold of 0.5 turns the soft masks into bool. A missing mask is an InputError when
the folder exists; without a ``mask/`` folder the scene has no masks.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Optional, Union

import numpy as np
import scipy.linalg
import torch

from ..errors import InputError
from ..io.images import image_size, list_images
from ..scene import Scene
from .catalogue import SceneCatalogue, ViewFiles
from .common import (check_array, checked_rotation, common_image_size, depth_range_sphere, drop_skew, numeric_stem,
                     to_cameras, viewmat)
from .formats import SceneFormat, register_format

CAMERA_FILES = ("cameras_sphere.npz", "cameras.npz")
IMAGE_DIRS = ("image", "images", "rgb")
MASK_DIRS = ("mask", "masks")


def decompose_projection(P: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(K, R, t) with P ~ K [R | t], K upper triangular with a positive diagonal and K[2, 2] = 1, det R = +1."""
    P = np.asarray(P, dtype=np.float64)[:3, :4]
    M = P[:, :3]
    if abs(np.linalg.det(M)) < 1e-12 * max(1.0, np.abs(M).max()) ** 3:
        raise InputError(where, "projection matrix is singular (not a camera)")
    K, R = scipy.linalg.rq(M)
    D = np.diag(np.sign(np.diag(K)))
    K, R = K @ D, D @ R  # D @ D = I, so K R is unchanged
    scale = K[2, 2]
    if np.linalg.det(R) < 0:  # P and -P are the same camera: flip to get a proper rotation
        R, scale = -R, -scale
    t = np.linalg.solve(K, P[:, 3]) / np.sign(scale)
    K = K / K[2, 2]
    return K, checked_rotation(R, where), t


def _find(root: Path, names: tuple[str, ...], kind: str, required: bool = True) -> Optional[Path]:
    for n in names:
        if (root / n).exists():
            return root / n
    if required:
        raise InputError(str(root), f"no {kind} found (looked for {', '.join(names)})")
    return None


@register_format
class IDRFormat(SceneFormat):
    name = "idr"
    markers = CAMERA_FILES
    description = "IDR/NeuS (DTU): cameras_sphere.npz or cameras.npz + image/ (+ mask/)"

    def load(self, root: Path, masks: bool = True, normalize: bool = False, max_skew: float = 0.05,
             mask_threshold: float = 0.5, name: Optional[str] = None) -> SceneCatalogue:
        return catalogue_idr(root, masks, normalize, max_skew, mask_threshold, name)


def load_idr(path: Union[str, Path], **options) -> Scene:
    """Load an IDR/NeuS scene folder, every view decoded (options as :func:`catalogue_idr`)."""
    return catalogue_idr(path, **options).load()


def catalogue_idr(path: Union[str, Path], masks: bool = True, normalize: bool = False, max_skew: float = 0.05,
                  mask_threshold: float = 0.5, name: Optional[str] = None) -> SceneCatalogue:
    """Catalogue of an IDR/NeuS scene folder (see the module docstring for the conventions)."""
    root = Path(path)
    cam_path = _find(root, CAMERA_FILES, "camera file")
    image_dir = _find(root, IMAGE_DIRS, "image folder")
    files = list_images(image_dir)
    try:
        with np.load(cam_path, allow_pickle=False) as npz:
            cams = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise InputError(str(cam_path), f"cannot read ({type(e).__name__}: {e})") from None
    n_cams = sum(1 for k in cams if k.startswith("world_mat_") and k[len("world_mat_"):].isdigit())
    if n_cams != len(files):
        raise InputError(str(cam_path), f"{n_cams} world_mat_* cameras but {len(files)} images in {image_dir}")

    W, H = common_image_size(files)
    Ks, vms, scale_mats, skews = [], [], [], []
    for i in range(len(files)):
        wkey, skey = f"world_mat_{i}", f"scale_mat_{i}"
        if wkey not in cams:
            raise InputError(f"{cam_path}:{wkey}",
                             f"missing (the file must hold world_mat_0..world_mat_{len(files) - 1})")
        wm = cams[wkey]
        if wm.shape not in ((4, 4), (3, 4)):
            raise InputError(f"{cam_path}:{wkey}", f"expected shape (4, 4) or (3, 4), got {wm.shape}")
        P = check_array(wm, wm.shape, f"{cam_path}:{wkey}")[:3]
        if skey not in cams:
            raise InputError(f"{cam_path}:{skey}", "missing (IDR/NeuS camera files hold scale_mat_0.."
                                                   f"scale_mat_{len(files) - 1}, the scene's bounding sphere, "
                                                   "from which the depth range is taken)")
        S = check_array(cams[skey], (4, 4), f"{cam_path}:{skey}")
        if abs(np.linalg.det(S[:3, :3])) < 1e-12:
            raise InputError(f"{cam_path}:{skey}", "scale matrix is singular")
        if normalize:
            P = P @ S
        K, R, t = decompose_projection(P, f"{cam_path}:{wkey}")
        skews.append(abs(K[0, 1]))
        Ks.append(drop_skew(K, f"{cam_path}:{wkey}", max_skew))
        vms.append(viewmat(R, t))
        scale_mats.append(S)
    vms_arr = np.stack(vms)
    cameras = to_cameras(np.stack(Ks), vms_arr, W, H, str(cam_path))

    # bounding sphere: unit sphere through scale_mat (its centre and largest axis); in the normalised frame
    # it is the unit sphere itself.
    S0 = scale_mats[0]
    if normalize:
        centre, radius = np.zeros(3), 1.0
    else:
        centre, radius = S0[:3, 3], float(np.linalg.norm(S0[:3, :3], axis=0).max())
    depth_range = depth_range_sphere(vms_arr, centre, radius)

    mask_files: list = [None] * len(files)
    mask_dir = _find(root, MASK_DIRS, "mask folder", required=False) if masks else None
    if mask_dir is not None:
        by_number = {numeric_stem(p): p for p in list_images(mask_dir) if numeric_stem(p) is not None}
        mask_files = []
        for f in files:
            num = numeric_stem(f)
            if num is None or num not in by_number:
                raise InputError(str(mask_dir / f.name), f"no mask for image {f.name} in {mask_dir} (masks are "
                                                         "matched by the number in the file name)")
            mf = by_number[num]
            if image_size(mf) != (W, H):
                ms = image_size(mf)
                raise InputError(str(mf), f"mask is {ms[0]}x{ms[1]} but the images are {W}x{H}")
            mask_files.append(mf)

    return SceneCatalogue(
        name=name or root.resolve().name,
        format="idr",
        cameras=cameras,
        image_names=[p.name for p in files],
        views=[ViewFiles(p, (W, H), mask=m) for p, m in zip(files, mask_files)],
        mask_threshold=mask_threshold,
        depth_range=torch.from_numpy(depth_range.astype(np.float32)),
        units="unit-sphere frame" if normalize else "dataset world units (mm for DTU)",
        source=f"idr:{root}",
        meta={"format": "idr", "scale_mat": torch.from_numpy(S0.astype(np.float32)), "normalized": normalize,
              "max_abs_skew": float(max(skews)), "camera_file": str(cam_path), "image_dir": str(image_dir),
              "bounding_sphere": (centre.tolist(), radius)},
    )
