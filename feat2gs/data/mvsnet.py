"""DTU (and other MVS scenes) in MVSNet's layout: ``cams/<n>_cam.txt`` + ``images/`` (+ ``depths/`` GT depth,
+ ``masks/`` | ``mask/`` | ``binary_masks/``), as in MVSNet's ``dtu_test`` release and the Feat2GS DTU scenes.

``<n>_cam.txt``::

    extrinsic
    r11 r12 r13 t1        (4x4 world-to-camera, OpenCV axes)
    ...
    intrinsic
    fx 0 cx               (3x3, pixels of the images in images/)
    ...
    DEPTH_MIN DEPTH_INTERVAL [DEPTH_NUM [DEPTH_MAX]]

Files are matched by the first number in their names (``00000012_cam.txt`` <-> ``00000012.jpg`` <->
``depth_map_0012.pfm`` <-> ``012.png``); views are in that number's order. Every image needs a camera; depth
maps and masks, when their folder exists, are needed for every view. ``intrinsics_size=[w, h]`` scales K from
images of another size (MVSNet's training cameras are for 160x128 maps, say).

``depth_range`` = [DEPTH_MIN, DEPTH_MAX] per view (DEPTH_MAX = DEPTH_MIN + DEPTH_INTERVAL x (DEPTH_NUM or 192)
when absent). GT depth (``.pfm``, MVSNet, or ``.npy``, Feat2GS) is z-depth in the cameras' units (mm for DTU),
0 / non-finite = unknown; a map of another size than the images (same aspect) is resized by nearest neighbour.
It feeds the ``dataset`` initialiser, the GT points of the 3D metrics and the evaluation masks. Masks are
thresholded at ``mask_threshold``.

:func:`write_mvsnet` writes a scene in this layout (PFM depths).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..errors import InputError
from ..io.images import image_size, list_images, write_png
from ..io.pfm import read_pfm, write_pfm
from ..scene import Scene
from .catalogue import SceneCatalogue, ViewFiles
from .common import check_array, checked_rotation, drop_skew, require_file, to_cameras, viewmat
from .formats import SceneFormat, register_format

CAM_DIR = "cams"
CAM_SUFFIX = "_cam.txt"
IMAGE_DIRS = ("images", "image", "rgb")
DEPTH_DIRS = ("depths", "depth")
MASK_DIRS = ("masks", "mask", "binary_masks")
DEFAULT_DEPTH_NUM = 192
_NUM = re.compile(r"\d+")


def view_number(path: Path) -> Optional[int]:
    m = _NUM.search(path.stem)
    return int(m.group()) if m else None


@register_format
class MVSNetFormat(SceneFormat):
    name = "mvsnet"
    markers = (f"{CAM_DIR}/*{CAM_SUFFIX}",)
    description = "MVSNet / DTU: cams/*_cam.txt + images/ (+ depths/*.pfm|npy, masks/)"

    def load(self, root: Path, intrinsics_size: Optional[Sequence[int]] = None, masks: bool = True,
             depths: bool = True, mask_threshold: float = 0.5, max_skew: float = 0.05,
             name: Optional[str] = None) -> SceneCatalogue:
        return catalogue_mvsnet(root, intrinsics_size, masks, depths, mask_threshold, max_skew, name)


def parse_cam_file(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(world-to-camera 4x4, K 3x3, [depth_min, depth_interval, depth_num, depth_max] with NaN for absent)."""
    require_file(path, "camera file")
    try:
        words = path.read_text().split()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(str(path), f"cannot read ({type(e).__name__}: {e})") from None
    low = [w.lower() for w in words]
    if "extrinsic" not in low or "intrinsic" not in low:
        raise InputError(str(path), "expected the sections 'extrinsic' (4x4) and 'intrinsic' (3x3)")
    e, i = low.index("extrinsic"), low.index("intrinsic")

    def nums(start: int, n: int, field: str) -> np.ndarray:
        vals = words[start:start + n]
        try:
            arr = np.array([float(v) for v in vals])
        except ValueError:
            raise InputError(f"{path}:{field}", f"not a number in {' '.join(vals)!r}") from None
        if arr.size != n:
            raise InputError(f"{path}:{field}", f"expected {n} numbers, got {arr.size}")
        return check_array(arr, (n,), f"{path}:{field}")

    E = nums(e + 1, 16, "extrinsic").reshape(4, 4)
    K = nums(i + 1, 9, "intrinsic").reshape(3, 3)
    rest = words[i + 10:]
    depth = np.full(4, np.nan)
    try:
        vals = [float(v) for v in rest[:4]]
    except ValueError:
        raise InputError(f"{path}:depth", f"not a number in {' '.join(rest[:4])!r}") from None
    depth[:len(vals)] = vals
    return E, K, depth


def _folder(root: Path, names: Sequence[str]) -> Optional[Path]:
    return next((root / n for n in names if (root / n).is_dir()), None)


def _by_number(files: Sequence[Path], folder: Path) -> dict[int, Path]:
    out: dict[int, Path] = {}
    for p in files:
        n = view_number(p)
        if n is None:
            continue
        if n in out:
            raise InputError(str(p), f"two files for view {n} in {folder} ({out[n].name} and {p.name})")
        out[n] = p
    return out


def catalogue_mvsnet(root: Union[str, Path], intrinsics_size: Optional[Sequence[int]] = None, masks: bool = True,
                     depths: bool = True, mask_threshold: float = 0.5, max_skew: float = 0.05,
                     name: Optional[str] = None) -> SceneCatalogue:
    """Catalogue of an MVSNet-layout scene (see the module docstring)."""
    root = Path(root)
    cam_dir = root / CAM_DIR
    cams = _by_number(sorted(cam_dir.glob("*" + CAM_SUFFIX)), cam_dir) if cam_dir.is_dir() else {}
    if not cams:
        raise InputError(str(cam_dir), f"no *{CAM_SUFFIX} camera files")
    img_dir = _folder(root, IMAGE_DIRS)
    if img_dir is None:
        raise InputError(str(root / IMAGE_DIRS[0]), "image folder not found")
    images = _by_number(list_images(img_dir), img_dir)
    no_cam = sorted(set(images) - set(cams))
    if no_cam:
        raise InputError(str(cam_dir / f"{no_cam[0]:08d}{CAM_SUFFIX}"),
                         f"no camera for {len(no_cam)} image(s) (e.g. {images[no_cam[0]].name})")
    numbers = sorted(images)
    depth_dir = _folder(root, DEPTH_DIRS) if depths else None
    mask_dir = _folder(root, MASK_DIRS) if masks else None
    depth_files = _by_number([p for p in sorted(depth_dir.iterdir()) if p.suffix.lower() in (".pfm", ".npy")],
                             depth_dir) if depth_dir else {}
    mask_files = _by_number(list_images(mask_dir), mask_dir) if mask_dir else {}
    for folder, found, what in ((depth_dir, depth_files, "depth map"), (mask_dir, mask_files, "mask")):
        if folder is not None:
            lack = [n for n in numbers if n not in found]
            if lack:
                raise InputError(str(folder), f"no {what} for {len(lack)} view(s) (e.g. {images[lack[0]].name}; "
                                              "files are matched by the first number in their names)")
    W, H = image_size(images[numbers[0]])
    Ks, vms, ranges, views = [], [], [], []
    for n in numbers:
        f = images[n]
        if image_size(f) != (W, H):
            s = image_size(f)
            raise InputError(str(f), f"image is {s[0]}x{s[1]} but {images[numbers[0]].name} is {W}x{H}; all views "
                                     "must have one size")
        E, K, d = parse_cam_file(cams[n])
        where = str(cams[n])
        if not np.allclose(E[3], [0, 0, 0, 1], atol=1e-6):
            raise InputError(f"{where}:extrinsic", "last row must be 0 0 0 1")
        R = checked_rotation(E[:3, :3], f"{where}:extrinsic")
        if K[0, 0] <= 0 or K[1, 1] <= 0 or abs(K[2, 2] - 1) > 1e-6:
            raise InputError(f"{where}:intrinsic", f"not an intrinsic matrix with positive focals: {K.tolist()}")
        K = drop_skew(K, f"{where}:intrinsic", max_skew)
        if intrinsics_size is not None:
            K = K.copy()
            K[0] *= W / float(intrinsics_size[0])
            K[1] *= H / float(intrinsics_size[1])
        Ks.append(K)
        vms.append(viewmat(R, E[:3, 3]))
        dmin, dint, dnum, dmax = d
        if np.isfinite(dmin) and dmin > 0:
            far = dmax if np.isfinite(dmax) else dmin + (dint if np.isfinite(dint) else 0) * (
                dnum if np.isfinite(dnum) else DEFAULT_DEPTH_NUM)
            ranges.append([dmin, max(far, dmin * (1 + 1e-6))])
        else:
            ranges.append(None)
        views.append(ViewFiles(f, (W, H), mask=mask_files.get(n), depth=depth_files.get(n)))
    cameras = to_cameras(np.stack(Ks), np.stack(vms), W, H, str(cam_dir))
    depth_range = torch.tensor(ranges, dtype=torch.float32) if all(r is not None for r in ranges) else None
    return SceneCatalogue(name=name or root.resolve().name, format="mvsnet", cameras=cameras,
                          image_names=[images[n].name for n in numbers], views=views, depth_range=depth_range,
                          units="dataset world units (mm for DTU)", source=f"mvsnet:{root}",
                          meta={"format": "mvsnet", "cam_dir": str(cam_dir), "image_dir": str(img_dir),
                                "depth_dir": str(depth_dir) if depth_dir else None,
                                "mask_dir": str(mask_dir) if mask_dir else None},
                          mask_threshold=mask_threshold, read_depth=read_depth_file)


def read_depth_file(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as e:
            raise InputError(str(path), f"cannot read ({type(e).__name__}: {e})") from None
        return np.squeeze(arr)
    return read_pfm(path)


def write_mvsnet(scene: Scene, root: Union[str, Path]) -> Path:
    """A scene in MVSNet's layout: ``cams/%08d_cam.txt`` (depth_range as DEPTH_MIN and DEPTH_MAX), ``images/``,
    ``depths/%08d.pfm`` (when the scene has depths) and ``masks/%03d.png`` (when it has masks)."""
    root = Path(root)
    (root / CAM_DIR).mkdir(parents=True, exist_ok=True)
    K, vm = scene.cameras.K.double().numpy(), scene.cameras.viewmats.double().numpy()
    rng = scene.depth_range.double().numpy() if scene.depth_range is not None else None
    for v in range(scene.num_views):
        lines = ["extrinsic"] + [" ".join(repr(float(x)) for x in row) for row in vm[v]] + ["", "intrinsic"] + \
            [" ".join(repr(float(x)) for x in row) for row in K[v]] + [""]
        if rng is not None:
            near, far = rng[v]
            step = float(far - near) / DEFAULT_DEPTH_NUM
            lines.append(f"{float(near)!r} {step!r} {DEFAULT_DEPTH_NUM} {float(far)!r}")
        (root / CAM_DIR / f"{v:08d}{CAM_SUFFIX}").write_text("\n".join(lines) + "\n")
        write_png(root / "images" / f"{v:08d}.png", scene.images[v])
        if scene.depths is not None:
            write_pfm(root / "depths" / f"{v:08d}.pfm", scene.depths[v].numpy())
        if scene.masks is not None:
            write_png(root / "masks" / f"{v:03d}.png", scene.masks[v])
    return root
