"""COLMAP scenes: a sparse model (``sparse/0/`` or ``sparse/``; ``cameras``, ``images``, ``points3D`` as ``.bin``
or ``.txt``) + the images it names (``images/``, or ``images_N/`` downsampled by N) -- the layout of Mip-NeRF 360,
Tanks and Temples, DL3DV and most captures.

* Views: the registered images of the model, sorted by name (COLMAP's image ids are arbitrary); each name is a
  path relative to the image folder. Names without a file are one InputError listing them, or, with
  ``skip_missing=True``, dropped with a warning giving their count (``meta['missing_images']``).
* Cameras: COLMAP's world-to-camera (qvec, tvec) in OpenCV axes and its pixel-centre convention are ours, so
  poses and intrinsics carry over unchanged; for ``images_N`` the intrinsics are scaled per axis by the ratio
  of the stored image size to the camera's. Models SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV,
  FULL_OPENCV and OPENCV_FISHEYE; distorted ones are undistorted to their pinhole part on load (OpenCV, see
  ``undistort.py``), the pixels that undistortion cannot fill masked out in ``Scene.masks``. Other models are
  an InputError naming the file and camera. All views must share one image size.
* ``sparse_points``: ``points3D`` (colours in ``meta['sparse_colors']``). ``depth_range``: per view the 0.1 and
  99.9 percentiles of the z-depths of the points it observes (its 2D points' tracks) or, in a model without
  tracks, of the points inside the view (in front of it, projecting inside the image); a view with fewer than 8
  such points gets the range over all views; none without points.

:func:`write_colmap` writes cameras (one PINHOLE camera per view), poses and points as a text (or binary) model
and, when given, the images -- for scenes and for trained runs' cameras.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..errors import InputError
from ..io.colmap import (ColmapCamera, ColmapImage, ColmapPoints, qvec_to_rotmat, read_model, rotmat_to_qvec,
                         write_cameras_bin, write_cameras_text, write_images_bin, write_images_text,
                         write_points3d_bin, write_points3d_text)
from ..io.images import IMAGE_EXTENSIONS, image_size, write_png
from ..scene import Cameras, Scene
from .catalogue import SceneCatalogue, ViewFiles
from .common import checked_rotation, to_cameras, viewmat
from .formats import SceneFormat, register_format
from .undistort import Undistorter, split_camera_params

MODEL_DIRS = ("sparse/0", "sparse")
_STEMS = ("cameras", "images")
_DOWNSAMPLED = re.compile(r"^images_(\d+)$")


def find_model_dir(root: Path, model: Optional[Union[str, Path]] = None) -> Optional[Path]:
    if model is not None:
        p = Path(model)
        return p if p.is_absolute() else root / p
    for d in MODEL_DIRS:
        if any((root / d / f"{s}{e}").is_file() for s in _STEMS for e in (".bin", ".txt")):
            return root / d
    return None


@register_format
class ColmapFormat(SceneFormat):
    name = "colmap"
    markers = ("sparse/0/images.bin", "sparse/0/images.txt", "sparse/images.bin", "sparse/images.txt")
    description = "COLMAP: sparse/0/{cameras,images,points3D}.{bin,txt} + images/ (or images_N/)"

    def detect(self, root: Path) -> int:
        d = find_model_dir(root)
        if d is None:
            return 0
        full = all(any((d / f"{s}{e}").is_file() for e in (".bin", ".txt")) for s in _STEMS)
        return 2 if full else 1

    def load(self, root: Path, model: Optional[str] = None, images: Optional[str] = None, factor: Optional[int] = None,
             skip_missing: bool = False, undistort: bool = True, name: Optional[str] = None) -> SceneCatalogue:
        return catalogue_colmap(root, model, images, factor, skip_missing, undistort, name)


def _image_folder(root: Path, images: Optional[str], factor: Optional[int]) -> Path:
    if images is not None and factor is not None:
        raise InputError("colmap.images", "give either images= or factor=, not both")
    if images is not None:
        p = Path(images)
        folder = p if p.is_absolute() else root / p
    elif factor is not None and int(factor) != 1:
        folder = root / f"images_{int(factor)}"
    else:
        folder = root / "images"
    if not folder.is_dir():
        raise InputError(str(folder), "image folder not found")
    return folder


def catalogue_colmap(root: Union[str, Path], model: Optional[str] = None, images: Optional[str] = None,
                     factor: Optional[int] = None, skip_missing: bool = False, undistort: bool = True,
                     name: Optional[str] = None) -> SceneCatalogue:
    """Catalogue of a COLMAP scene folder (see the module docstring); ``model`` = the sparse model folder,
    ``images`` / ``factor`` the image folder, ``undistort=False`` keeps distorted images (pinhole part only)."""
    root = Path(root)
    mdir = find_model_dir(root, model)
    if mdir is None:
        raise InputError(str(root / "sparse" / "0" / "images.bin"), "not found (no COLMAP model in sparse/0 or sparse)")
    cams, imgs, pts = read_model(mdir)
    cam_file = next(p for p in (mdir / "cameras.bin", mdir / "cameras.txt") if p.is_file())
    img_file = next(p for p in (mdir / "images.bin", mdir / "images.txt") if p.is_file())
    if not imgs:
        raise InputError(str(img_file), "no registered images")
    folder = _image_folder(root, images, factor)
    order = sorted(imgs.values(), key=lambda im: im.name)
    missing = [im.name for im in order if not (folder / im.name).is_file()]
    warnings = []
    if missing:
        if not skip_missing:
            raise InputError(str(img_file), f"{len(missing)} image(s) named in the model are not in {folder}: "
                                            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} "
                                            "(scene.options.skip_missing=true drops them)")
        warnings.append(f"{len(missing)} image(s) of the model are missing from {folder} and were skipped")
        gone = set(missing)
        order = [im for im in order if im.name not in gone]
        if not order:
            raise InputError(str(folder), "none of the model's images are present")
    files = [folder / im.name for im in order]
    sizes = {}
    for im, f in zip(order, files):
        sizes[im.id] = image_size(f)
    W, H = sizes[order[0].id]
    Ks, vms, views, undistorters, used = [], [], [], {}, {}
    for im, f in zip(order, files):
        if sizes[im.id] != (W, H):
            s = sizes[im.id]
            raise InputError(str(f), f"image is {s[0]}x{s[1]} but {order[0].name} is {W}x{H}; all views must have "
                                     "one size")
        if im.camera_id not in cams:
            raise InputError(f"{img_file} (image {im.id} {im.name}).camera_id",
                             f"camera {im.camera_id} is not in {cam_file.name}")
        cam = cams[im.camera_id]
        where = f"{cam_file} (camera {cam.id}).model"
        K, coeffs, fisheye = split_camera_params(cam.model, cam.params, where)
        sx, sy = W / cam.width, H / cam.height
        if abs(sx / sy - 1) > 0.02:
            raise InputError(str(f), f"image is {W}x{H} but camera {cam.id} is for {cam.width}x{cam.height} images "
                                     "(aspect ratios differ)")
        K = K.copy()
        K[0] *= sx
        K[1] *= sy
        Ks.append(K)
        R = checked_rotation(qvec_to_rotmat(im.qvec), f"{img_file} (image {im.id} {im.name}).qvec")
        vms.append(viewmat(R, im.tvec))
        und = None
        if undistort and Undistorter.needed(coeffs):
            if cam.id not in undistorters:
                undistorters[cam.id] = Undistorter(K, coeffs, fisheye, (W, H))
            und = undistorters[cam.id]
        used[cam.id] = {"model": cam.model, "width": cam.width, "height": cam.height, "params": cam.params.tolist()}
        views.append(ViewFiles(f, (W, H), undistort=und))
    cameras = to_cameras(np.stack(Ks), np.stack(vms), W, H, str(img_file))

    sparse_points = depth_range = None
    meta = {"format": "colmap", "model_dir": str(mdir), "image_dir": str(folder), "colmap_cameras": used,
            "undistorted": bool(undistorters), "missing_images": len(missing)}
    if pts is not None and len(pts):
        sparse_points = torch.from_numpy(pts.xyz.astype(np.float32))
        meta["sparse_colors"] = torch.from_numpy(pts.rgb.copy())
        index = {int(i): k for k, i in enumerate(pts.ids)}
        observed = [[index[int(i)] for i in im.point3D_ids if int(i) in index] for im in order]
        depth_range = sparse_depth_range(cameras, sparse_points, observed=observed)
    return SceneCatalogue(name=name or root.resolve().name, format="colmap", cameras=cameras,
                          image_names=[im.name for im in order], views=views, depth_range=depth_range,
                          sparse_points=sparse_points, units="COLMAP world units (arbitrary scale)",
                          source=f"colmap:{root}", meta=meta, warnings=warnings)


def sparse_depth_range(cameras: Cameras, points: torch.Tensor, min_points: int = 8,
                       observed: Optional[Sequence[Sequence[int]]] = None) -> Optional[torch.Tensor]:
    """(V, 2) per-view [0.1, 99.9] percentiles of the depths of the points seen (see the module docstring):
    ``observed[v]`` (indices of the points in view v's track, when the model has tracks) or else the points in
    front of the view projecting inside its image."""
    uv, z = cameras.project(points.float())
    inside = (z > 0) & (uv[..., 0] >= 0) & (uv[..., 0] <= cameras.width) & (uv[..., 1] >= 0) & \
        (uv[..., 1] <= cameras.height)
    if observed is not None:
        for v, idx in enumerate(observed):
            if len(idx) >= min_points:
                seen = torch.zeros(points.shape[0], dtype=torch.bool)
                seen[torch.as_tensor(list(idx), dtype=torch.long)] = True
                inside[v] = seen & (z[v] > 0)
    if not inside.any():
        return None
    out = torch.zeros(len(cameras), 2)
    zs_all = z[inside].double()
    glob = torch.quantile(zs_all, torch.tensor([0.001, 0.999], dtype=torch.float64)).float()
    for v in range(len(cameras)):
        zs = z[v][inside[v]].double()
        out[v] = torch.quantile(zs, torch.tensor([0.001, 0.999], dtype=torch.float64)).float() \
            if zs.numel() >= min_points else glob
    out[:, 1] = torch.maximum(out[:, 1], out[:, 0] * (1 + 1e-6))
    return out


# ---------------------------------------------------------------------------------------------- writing
def image_file_name(name: str) -> str:
    """``name`` with ``.png`` appended unless it already ends with an image extension."""
    return name if Path(name).suffix.lower() in IMAGE_EXTENSIONS else name + ".png"


def write_colmap(root: Union[str, Path], cameras: Cameras, names: Sequence[str],
                 images: Optional[torch.Tensor] = None, points: Optional[torch.Tensor] = None,
                 colors: Optional[torch.Tensor] = None, binary: bool = False, bit_depth: int = 8) -> Path:
    """Write a COLMAP model to ``root/sparse/0`` (text, or binary with ``binary=True``): one PINHOLE camera per
    view (ids 1..V), the poses, and ``points`` (M, 3) with ``colors`` (M, 3) uint8 (no tracks). With ``images``
    (V, 3, H, W) the views are written to ``root/images/<name>`` (PNG of ``bit_depth`` 8 or 16 bits; ``.png``
    appended to names without an image extension, also in the model). Returns ``root``."""
    root = Path(root)
    if len(names) != len(cameras):
        raise InputError("names", f"{len(names)} names for {len(cameras)} cameras")
    mdir = root / "sparse" / "0"
    mdir.mkdir(parents=True, exist_ok=True)
    K = cameras.K.double().numpy()
    vm = cameras.viewmats.double().numpy()
    file_names = [image_file_name(n) if images is not None else n for n in names]
    cams = [ColmapCamera(v + 1, "PINHOLE", cameras.width, cameras.height,
                         np.array([K[v, 0, 0], K[v, 1, 1], K[v, 0, 2], K[v, 1, 2]])) for v in range(len(cameras))]
    ims = [ColmapImage(v + 1, rotmat_to_qvec(vm[v, :3, :3]), vm[v, :3, 3].copy(), v + 1, file_names[v])
           for v in range(len(cameras))]
    xyz = np.zeros((0, 3)) if points is None else points.double().cpu().numpy()
    rgb = np.full((len(xyz), 3), 128, np.uint8) if colors is None else np.asarray(colors, np.uint8).reshape(-1, 3)
    pts = ColmapPoints(np.arange(1, len(xyz) + 1, dtype=np.uint64), xyz, rgb, np.zeros(len(xyz)),
                       np.zeros(len(xyz) + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32))
    if binary:
        write_cameras_bin(mdir / "cameras.bin", cams)
        write_images_bin(mdir / "images.bin", ims)
        write_points3d_bin(mdir / "points3D.bin", pts)
    else:
        write_cameras_text(mdir / "cameras.txt", cams)
        write_images_text(mdir / "images.txt", ims)
        write_points3d_text(mdir / "points3D.txt", pts)
    if images is not None:
        for v, n in enumerate(file_names):
            write_png(root / "images" / n, images[v], bit_depth)
    return root


def write_colmap_scene(scene: Scene, root: Union[str, Path], binary: bool = False, bit_depth: int = 8) -> Path:
    """A scene (images, cameras, sparse points) as a COLMAP folder readable by :func:`catalogue_colmap` (GT depths
    and masks have no place in a COLMAP model and are not written)."""
    colors = scene.meta.get("sparse_colors")
    return write_colmap(root, scene.cameras, scene.image_names, scene.images, scene.sparse_points,
                        None if colors is None else np.asarray(colors), binary, bit_depth)
