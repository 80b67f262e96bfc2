"""nerfstudio / instant-ngp / Blender scenes: ``transforms.json`` (or ``transforms_{train,val,test}.json``) + the
images its frames name.

* Frames: in file order (Blender: train, then val, then test); ``file_path`` relative to the json's folder
  (a path without an image extension gets ``.png``, as in the Blender scenes). Frames naming a missing file are
  one InputError listing them, or, with ``skip_missing=True``, dropped with a warning giving their count.
* Poses: ``transform_matrix`` is camera-to-world in OpenGL axes (x right, y up, z backwards);
  ours = inverse(c2w @ diag(1, -1, -1, 1)) (OpenCV world-to-camera). The rotation must be orthonormal (a scaled
  matrix is an error naming the frame); the world frame is the file's (instant-ngp's ``scale``/``offset`` and
  nerfstudio's ``applied_transform`` are recorded in ``meta``, not applied).
* Intrinsics, per frame or global (per-frame keys win): ``fl_x``, ``fl_y``, ``cx``, ``cy``, ``w``, ``h`` in pixels
  (pixel-centre convention, as ours), or ``camera_angle_x`` (``camera_angle_y``) in radians with the principal
  point at the image centre; ``w``/``h`` default to the image size, and intrinsics for another size are scaled.
  Distortion ``k1 k2 k3 k4 p1 p2``: ``camera_model: OPENCV_FISHEYE`` uses k1..k4 (OpenCV's fisheye model),
  otherwise OpenCV's (k1, k2, p1, p2, k3) (a perspective ``k4`` has no OpenCV equivalent and is an error);
  distorted frames are undistorted on load (``undistort.py``), the unfilled pixels masked out.
* RGBA frames (Blender) are composited over ``background`` (default white, [1, 1, 1]).
* Optional per frame: ``mask_path`` (valid pixels), ``depth_file_path`` (``.npy``, or 16-bit PNG times
  ``depth_unit_scale_factor``, default 1e-3, nerfstudio's convention).
* ``aabb_scale`` and the other top-level keys are kept in ``meta``. With ``transforms_{train,test}.json`` the
  split is in ``meta['splits']['blender']``.

:func:`write_transforms` writes cameras (and images) as a nerfstudio ``transforms.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..errors import InputError
from ..io.images import IMAGE_EXTENSIONS, image_size, read_image_array, write_png
from ..scene import Cameras, Scene
from .catalogue import SceneCatalogue, ViewFiles
from .colmap import image_file_name
from .common import check_array, checked_rotation, invert_rigid, make_K, to_cameras, viewmat
from .formats import SceneFormat, register_format
from .undistort import Undistorter

MAIN_FILE = "transforms.json"
BLENDER_FILES = ("transforms_train.json", "transforms_val.json", "transforms_test.json")
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x", "camera_angle_y",
                  "k1", "k2", "k3", "k4", "p1", "p2", "camera_model")


@register_format
class TransformsFormat(SceneFormat):
    name = "transforms"
    markers = (MAIN_FILE, "transforms_train.json")
    description = "nerfstudio / instant-ngp / Blender: transforms.json (or transforms_train/val/test.json)"

    def load(self, root: Path, file: Optional[str] = None, background: Sequence[float] = (1.0, 1.0, 1.0),
             skip_missing: bool = False, undistort: bool = True, name: Optional[str] = None) -> SceneCatalogue:
        return catalogue_transforms(root, file, background, skip_missing, undistort, name)


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise InputError(str(path), "file not found")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(str(path), f"cannot read JSON ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        raise InputError(f"{path}:frames", "missing or not a list")
    return data


def _number(d: dict, key: str, where: str) -> Optional[float]:
    if key not in d or d[key] is None:
        return None
    try:
        v = float(d[key])
    except (TypeError, ValueError):
        raise InputError(f"{where}.{key}", f"not a number: {d[key]!r}") from None
    if not math.isfinite(v):
        raise InputError(f"{where}.{key}", f"is {v} (NaN or inf)")
    return v


def _resolve(base: Path, file_path: str) -> Path:
    p = base / file_path
    if p.suffix.lower() not in IMAGE_EXTENSIONS and not p.is_file():
        p = p.with_name(p.name + ".png")
    return p


def catalogue_transforms(root: Union[str, Path], file: Optional[str] = None,
                         background: Sequence[float] = (1.0, 1.0, 1.0), skip_missing: bool = False,
                         undistort: bool = True, name: Optional[str] = None) -> SceneCatalogue:
    """Catalogue of a transforms.json scene (see the module docstring)."""
    root = Path(root)
    if file is not None:
        files = [root / file]
    elif (root / MAIN_FILE).is_file():
        files = [root / MAIN_FILE]
    else:
        files = [root / f for f in BLENDER_FILES if (root / f).is_file()]
        if not files:
            raise InputError(str(root / MAIN_FILE), "not found (nor transforms_train.json)")
    bg = tuple(float(c) for c in background) if background is not None else None
    if bg is not None and (len(bg) != 3 or not all(0 <= c <= 1 for c in bg)):
        raise InputError("transforms.background", f"expected an RGB triple in [0, 1], got {list(background)}")

    entries = []  # (json path, frame index, frame dict, top dict)
    tops = {}
    for jf in files:
        data = _read_json(jf)
        tops[jf.name] = {k: v for k, v in data.items() if k != "frames"}
        for i, fr in enumerate(data["frames"]):
            if not isinstance(fr, dict) or "file_path" not in fr:
                raise InputError(f"{jf}:frames[{i}].file_path", "missing")
            entries.append((jf, i, fr, data))
    if not entries:
        raise InputError(f"{files[0]}:frames", "no frames")

    missing = [(jf, i, fr) for jf, i, fr, _ in entries if not _resolve(jf.parent, str(fr["file_path"])).is_file()]
    warnings = []
    if missing:
        listing = ", ".join(f"frames[{i}].file_path={fr['file_path']}" for _, i, fr in missing[:5])
        if not skip_missing:
            raise InputError(str(missing[0][0]), f"{len(missing)} frame(s) name missing image files: {listing}"
                                                 f"{' ...' if len(missing) > 5 else ''} "
                                                 "(scene.options.skip_missing=true drops them)")
        warnings.append(f"{len(missing)} frame(s) name missing image files and were skipped")
        gone = {(jf, i) for jf, i, _ in missing}
        entries = [e for e in entries if (e[0], e[1]) not in gone]
        if not entries:
            raise InputError(str(files[0]), "no frame has its image file")

    Ks, vms, views, names, split_of = [], [], [], [], []
    size0 = None
    undistorters: dict = {}
    for jf, i, fr, top in entries:
        where = f"{jf}:frames[{i}]"
        img = _resolve(jf.parent, str(fr["file_path"]))
        W, H = image_size(img)
        if size0 is None:
            size0 = (W, H, img)
        elif (W, H) != size0[:2]:
            raise InputError(str(img), f"image is {W}x{H} but {size0[2].name} is {size0[0]}x{size0[1]}; all views "
                                       "must have one size")
        get = lambda k: _number(fr, k, where) if k in fr else _number(top, k, str(jf))  # noqa: E731
        w = get("w") or W
        h = get("h") or H
        fx, fy, cx, cy = get("fl_x"), get("fl_y"), get("cx"), get("cy")
        if fx is None:
            ax = get("camera_angle_x")
            if ax is None:
                raise InputError(f"{where}.fl_x", "no focal length (fl_x, or camera_angle_x) for this frame")
            fx = 0.5 * w / math.tan(0.5 * ax)
            ay = get("camera_angle_y")
            fy = fy if fy is not None else (0.5 * h / math.tan(0.5 * ay) if ay is not None else fx)
        fy = fx if fy is None else fy
        cx = w / 2.0 if cx is None else cx
        cy = h / 2.0 if cy is None else cy
        if fx <= 0 or fy <= 0:
            raise InputError(f"{where}.fl_x", f"focal lengths must be positive, got {fx:g}, {fy:g}")
        sx, sy = W / w, H / h
        if abs(sx / sy - 1) > 0.02:
            raise InputError(str(img), f"image is {W}x{H} but {jf.name} gives w={w:g}, h={h:g} (aspect ratios differ)")
        K = make_K(fx * sx, fy * sy, cx * sx, cy * sy)
        model = str(fr.get("camera_model", top.get("camera_model", "OPENCV"))).upper()
        k = {n: get(n) or 0.0 for n in ("k1", "k2", "k3", "k4", "p1", "p2")}
        if model == "OPENCV_FISHEYE":
            coeffs, fisheye = np.array([k["k1"], k["k2"], k["k3"], k["k4"]]), True
        else:
            if k["k4"] != 0:
                raise InputError(f"{where}.k4", f"a {model} camera with k4 (an r^8 term) has no OpenCV equivalent")
            coeffs, fisheye = np.array([k["k1"], k["k2"], k["p1"], k["p2"], k["k3"]]), False
        und = None
        if undistort and Undistorter.needed(coeffs):
            key = (tuple(K.ravel()), tuple(coeffs), fisheye)
            und = undistorters.setdefault(key, Undistorter(K, coeffs, fisheye, (W, H)))
        if "transform_matrix" not in fr:
            raise InputError(f"{where}.transform_matrix", "missing")
        c2w = check_array(fr["transform_matrix"], (None, 4), f"{where}.transform_matrix")
        if c2w.shape[0] not in (3, 4):
            raise InputError(f"{where}.transform_matrix", f"expected a 4x4 (or 3x4) matrix, got {c2w.shape}")
        c2w = np.concatenate([c2w[:3], [[0, 0, 0, 1]]]) @ OPENGL_TO_OPENCV
        R = checked_rotation(c2w[:3, :3], f"{where}.transform_matrix")
        vms.append(invert_rigid(viewmat(R, c2w[:3, 3])))
        Ks.append(K)
        mask = _resolve(jf.parent, str(fr["mask_path"])) if fr.get("mask_path") else None
        depth = (jf.parent / str(fr["depth_file_path"])) if fr.get("depth_file_path") else None
        for p, key in ((mask, "mask_path"), (depth, "depth_file_path")):
            if p is not None and not p.is_file():
                raise InputError(f"{where}.{key}", f"file not found: {p}")
        views.append(ViewFiles(img, (W, H), mask=mask, depth=depth, undistort=und))
        names.append(str(fr["file_path"]).removeprefix("./"))
        split_of.append(jf.name)
    W, H = size0[:2]
    cameras = to_cameras(np.stack(Ks), np.stack(vms), W, H, str(files[0]))
    meta: dict = {"format": "transforms", "files": [str(f) for f in files], "top_level": tops,
                  "undistorted": bool(undistorters), "missing_frames": len(missing)}
    aabb = [t.get("aabb_scale") for t in tops.values() if "aabb_scale" in t]
    if aabb:
        meta["aabb_scale"] = aabb[0]
    if len(files) > 1:
        tr = [i for i, s in enumerate(split_of) if s == "transforms_train.json"]
        te = [i for i, s in enumerate(split_of) if s == "transforms_test.json"]
        if tr and te:
            meta["splits"] = {"blender": {"train": tr, "test": te}}
    scale = float(tops[files[0].name].get("depth_unit_scale_factor", 1e-3))
    return SceneCatalogue(name=name or root.resolve().name, format="transforms", cameras=cameras, image_names=names,
                          views=views, units="transforms.json world units", source=f"transforms:{root}", meta=meta,
                          background=bg, read_depth=_depth_reader(scale), warnings=warnings)


def _depth_reader(png_scale: float):
    def read(path: Path) -> np.ndarray:
        if path.suffix.lower() == ".npy":
            try:
                return np.load(path, allow_pickle=False)
            except Exception as e:
                raise InputError(str(path), f"cannot read ({type(e).__name__}: {e})") from None
        arr = read_image_array(path)[..., 0]  # 16-bit PNG, divided by 65535 on reading
        return np.round(arr.astype(np.float64) * 65535.0) * png_scale
    return read


# ---------------------------------------------------------------------------------------------- writing
def write_transforms(root: Union[str, Path], cameras: Cameras, names: Sequence[str],
                     images: Optional[torch.Tensor] = None, extra: Optional[dict] = None,
                     depths: Optional[torch.Tensor] = None, masks: Optional[torch.Tensor] = None,
                     bit_depth: int = 8) -> Path:
    """Write ``root/transforms.json`` (nerfstudio layout: ``w``, ``h``, per-frame ``fl_x fl_y cx cy`` and OpenGL
    camera-to-world ``transform_matrix``; ``camera_model: OPENCV`` without distortion). With ``images`` the views
    go to ``root/images/<name>`` (PNG of ``bit_depth`` bits) and ``file_path`` points there; otherwise ``file_path``
    is ``images/<name>`` for images to be put there. ``depths`` (float32 ``.npy``, ``depth_file_path``) and
    ``masks`` (PNG, ``mask_path``) are written beside them when given. ``extra`` top-level keys are added.
    Returns the json path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if len(names) != len(cameras):
        raise InputError("names", f"{len(names)} names for {len(cameras)} cameras")
    K = cameras.K.double().numpy()
    c2w = np.linalg.inv(cameras.viewmats.double().numpy()) @ OPENGL_TO_OPENCV
    frames = []
    for v, n in enumerate(names):
        fname = image_file_name(n) if images is not None else n
        frame = {"file_path": f"images/{fname}", "fl_x": float(K[v, 0, 0]), "fl_y": float(K[v, 1, 1]),
                 "cx": float(K[v, 0, 2]), "cy": float(K[v, 1, 2]), "transform_matrix": c2w[v].tolist()}
        if images is not None:
            write_png(root / "images" / fname, images[v], bit_depth)
        stem = Path(fname).with_suffix("")
        if depths is not None:
            (root / "depths" / stem).parent.mkdir(parents=True, exist_ok=True)
            np.save(root / "depths" / f"{stem}.npy", depths[v].float().numpy())
            frame["depth_file_path"] = f"depths/{stem}.npy"
        if masks is not None:
            write_png(root / "masks" / f"{stem}.png", masks[v])
            frame["mask_path"] = f"masks/{stem}.png"
        frames.append(frame)
    data = {"camera_model": "OPENCV", "w": int(cameras.width), "h": int(cameras.height), **(extra or {}),
            "frames": frames}
    path = root / MAIN_FILE
    path.write_text(json.dumps(data, indent=2))
    return path


def write_transforms_scene(scene: Scene, root: Union[str, Path], bit_depth: int = 8) -> Path:
    """A scene's images, cameras, GT depths and masks as a transforms.json folder readable by
    :func:`catalogue_transforms`."""
    return write_transforms(root, scene.cameras, scene.image_names, scene.images, depths=scene.depths,
                            masks=scene.masks, bit_depth=bit_depth)
