"""Helpers shared by the dataset loaders: array checks that name the file and field at fault, pose
assembly, depth ranges from bounding volumes, and the same-frame check for SfM points."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..errors import InputError
from ..scene import Cameras

PathLike = Union[str, Path]


def check_array(arr: np.ndarray, shape: Sequence[Optional[int]], where: str) -> np.ndarray:
    """``arr`` as float64, checked to have ``shape`` (None = any size) and finite values."""
    try:
        arr = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InputError(where, f"not numeric: {e}") from None
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise InputError(where, f"expected shape {want}, got {arr.shape}")
    if not np.isfinite(arr).all():
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise InputError(where, f"contains NaN or inf (first at index {idx})")
    return arr


def checked_rotation(R: np.ndarray, where: str, tol: float = 1e-3) -> np.ndarray:
    """``R`` snapped to the nearest rotation (SVD) after checking it is one within ``tol``."""
    R = np.asarray(R, dtype=np.float64)
    err = np.abs(R @ R.T - np.eye(3)).max()
    if err > tol:
        raise InputError(where, f"rotation is not orthonormal (max |R R^T - I| = {err:.2g})")
    if np.linalg.det(R) < 0:
        raise InputError(where, "rotation has determinant -1 (a reflection)")
    U, _, Vt = np.linalg.svd(R)
    return U @ Vt


def viewmat(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """4x4 world-to-camera matrix [R | t; 0 0 0 1]."""
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = R, t
    return m


def invert_rigid(m: np.ndarray) -> np.ndarray:
    """Inverse of a 4x4 rigid transform (exact for orthonormal R)."""
    R, t = m[:3, :3], m[:3, 3]
    return viewmat(R.T, -R.T @ t)


def make_K(fx: float, fy: float, cx: float, cy: float, skew: float = 0.0) -> np.ndarray:
    return np.array([[fx, skew, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def drop_skew(K: np.ndarray, where: str, max_skew: float = 0.05) -> np.ndarray:
    """K with its skew K[0, 1] set to zero, after checking it is below ``max_skew`` pixels (the renderers take
    fx, fy, cx, cy only, so a larger skew cannot be represented)."""
    if abs(K[0, 1]) > max_skew:
        raise InputError(where, f"intrinsics have a skew of {K[0, 1]:.3g} px (> max_skew={max_skew}); skewed "
                                "pinholes are not supported")
    K = K.copy()
    K[0, 1] = 0.0
    return K


def depth_range_sphere(viewmats: np.ndarray, centre: np.ndarray, radius: float,
                       min_near_fraction: float = 1e-3) -> np.ndarray:
    """(V, 2) z-depth range of a sphere in each camera: [z_c - r, z_c + r] with z_c the centre's depth;
    ``near`` is kept >= ``min_near_fraction * radius`` (a camera inside the sphere)."""
    zc = viewmats[:, 2, :3] @ centre + viewmats[:, 2, 3]
    near = np.maximum(zc - radius, min_near_fraction * radius)
    far = np.maximum(zc + radius, near * (1 + 1e-6))
    return np.stack([near, far], 1)


def depth_range_box(viewmats: np.ndarray, lo: np.ndarray, hi: np.ndarray, min_near: float = 1e-6) -> np.ndarray:
    """(V, 2) z-depth range of an axis-aligned box (min and max depth of its 8 corners; near clipped
    to ``min_near`` when a camera sees the box from inside or behind)."""
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    z = corners @ viewmats[:, 2, :3].T + viewmats[:, 2, 3]  # (8, V)
    near = np.maximum(z.min(0), min_near)
    far = np.maximum(z.max(0), near * (1 + 1e-6))
    return np.stack([near, far], 1)


def visibility_fractions(cameras: Cameras, points: torch.Tensor) -> tuple[float, float]:
    """(fraction of points in front of every camera, fraction inside the image of at least one camera,
    in front of it)."""
    uv, z = cameras.project(points.float())
    front = z > 0
    inside = front & (uv[..., 0] >= 0) & (uv[..., 0] <= cameras.width) & (uv[..., 1] >= 0) & \
        (uv[..., 1] <= cameras.height)
    return float(front.all(0).float().mean()), float(inside.any(0).float().mean())


def check_same_frame(cameras: Cameras, points: torch.Tensor, where: str, min_fraction: float = 0.9) -> dict:
    """Check that SfM points live in the cameras' world frame: at least ``min_fraction`` of them must lie in
    front of every camera and project inside at least one image. Returns the two fractions."""
    front, inside = visibility_fractions(cameras, points)
    if front < min_fraction or inside < min_fraction:
        raise InputError(where, f"points are not in the world frame of the cameras: {front:.0%} lie in front of "
                                f"every camera and {inside:.0%} project inside an image (need {min_fraction:.0%});"
                                " pass sparse=False to load the scene without them")
    return {"in_front_of_all": front, "inside_some_image": inside}


def numeric_stem(path: PathLike) -> Optional[int]:
    """The integer value of a file stem made of digits ("000012" -> 12), else None."""
    stem = Path(path).stem
    return int(stem) if stem.isdigit() else None


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise InputError(str(path), f"{what} not found")
    return path


def load_npy(path: Path) -> np.ndarray:
    """np.load of a .npy file (no pickles) with InputError for missing or corrupt files."""
    require_file(path, "file")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:
        raise InputError(str(path), f"cannot read ({type(e).__name__}: {e})") from None


def to_cameras(K: np.ndarray, viewmats: np.ndarray, width: int, height: int, where: str) -> Cameras:
    """Build :class:`Cameras`, re-raising its validation errors with ``where`` (the source file) named."""
    try:
        return Cameras(torch.from_numpy(np.asarray(K, np.float32)), torch.from_numpy(np.asarray(viewmats, np.float32)),
                       int(width), int(height))
    except InputError as e:
        raise InputError(f"{where} ({e.where})", e.detail) from None


def common_image_size(files: Sequence[Path]) -> tuple[int, int]:
    """(width, height) shared by image files, read from their headers only; InputError naming the first file
    of another size."""
    from ..io.images import image_size

    if not files:
        raise InputError("images", "no image files given")
    first = image_size(files[0])
    for p in files[1:]:
        s = image_size(p)
        if s != first:
            raise InputError(str(p), f"image is {s[0]}x{s[1]} but {Path(files[0]).name} is {first[0]}x{first[1]}; "
                                     "all views must have one size")
    return first
