"""Middlebury multi-view stereo scenes (Seitz et al.): ``<prefix>_par.txt`` + the images it names
(+ optional ``README.txt`` with the bounding box).

``*_par.txt``: first line = number of views; then one line per view
``name k11 k12 k13 k21 k22 k23 k31 k32 k33 r11 r12 r13 r21 r22 r23 r31 r32 r33 t1 t2 t3`` with the projection
P = K [R | t] (world-to-camera, OpenCV axes, image origin top-left). Views keep the file's order (the capture
order of the ring). K is used as stored (its pixel-centre convention is not documented; a half-pixel ambiguity
is below the calibration's accuracy; a skew below 0.05 px is dropped, a larger one is an error), rotations are
checked to be orthonormal and snapped to the nearest rotation.

Every image file whose name starts with the par file's prefix must be listed in it (a folder with more images
than cameras is an InputError, as is a listed image that is missing).

``depth_range``: when README.txt gives the "bounding box" (two corner triples), the z-range of its corners in
each camera; the box is also in ``meta['bbox']``. Otherwise no depth range.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from ..errors import InputError
from ..io.images import IMAGE_EXTENSIONS
from ..scene import Scene
from .catalogue import SceneCatalogue, ViewFiles
from .common import (check_array, checked_rotation, common_image_size, depth_range_box, drop_skew, to_cameras,
                     viewmat)
from .formats import SceneFormat, register_format

PAR_SUFFIX = "_par.txt"
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TRIPLE = re.compile(r"\(\s*(" + _NUMBER + r")[\s,]+(" + _NUMBER + r")[\s,]+(" + _NUMBER + r")\s*\)")


def find_par_file(root: Path, par_file: Optional[Union[str, Path]] = None) -> Path:
    if par_file is not None:
        p = Path(par_file)
        p = p if p.is_absolute() else root / p
        if not p.is_file():
            raise InputError(str(p), "camera file not found")
        return p
    found = sorted(root.glob("*" + PAR_SUFFIX))
    if not found:
        raise InputError(str(root), f"no *{PAR_SUFFIX} camera file in this folder")
    if len(found) > 1:
        raise InputError(str(root), f"several camera files ({', '.join(p.name for p in found)}); pass par_file=")
    return found[0]


def parse_par_file(path: Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(image names, K (V, 3, 3), R (V, 3, 3), t (V, 3)) of a Middlebury ``*_par.txt``."""
    try:
        lines = [ln.split() for ln in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(str(path), f"cannot read ({type(e).__name__}: {e})") from None
    lines = [ln for ln in lines if ln]
    if not lines or len(lines[0]) != 1 or not lines[0][0].isdigit():
        raise InputError(f"{path}:1", "first line must be the number of views")
    count = int(lines[0][0])
    rows = lines[1:]
    if len(rows) != count:
        raise InputError(str(path), f"header says {count} views but {len(rows)} camera lines follow")
    names, Ks, Rs, ts = [], [], [], []
    for i, row in enumerate(rows):
        where = f"{path}:{i + 2}"  # 1-based line number (header is line 1)
        if len(row) != 22:
            raise InputError(where, f"expected a name and 21 numbers, got {len(row)} fields")
        try:
            vals = np.array([float(v) for v in row[1:]])
        except ValueError as e:
            raise InputError(where, f"not a number: {e}") from None
        vals = check_array(vals, (21,), where)
        K = vals[:9].reshape(3, 3)
        if K[0, 0] <= 0 or K[1, 1] <= 0 or abs(K[2, 2] - 1) > 1e-6 or np.abs(K[2, :2]).max() > 1e-9 or K[1, 0] != 0:
            raise InputError(f"{where} K", "not an upper-triangular intrinsic matrix with positive focals: "
                                           f"{K.tolist()}")
        names.append(row[0])
        Ks.append(drop_skew(K, f"{where} K"))
        Rs.append(checked_rotation(vals[9:18].reshape(3, 3), f"{where} R"))
        ts.append(vals[18:])
    return names, np.stack(Ks), np.stack(Rs), np.stack(ts)


def parse_bounding_box(readme: Path) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """(lo, hi) corners from the "bounding box" paragraph of a Middlebury README.txt, or None."""
    try:
        text = readme.read_text(errors="replace")
    except OSError:
        return None
    idx = text.lower().find("bounding box")
    if idx < 0:
        return None
    triples = _TRIPLE.findall(text[idx:])
    if len(triples) < 2:
        return None
    a, b = np.array(triples[0], float), np.array(triples[1], float)
    return np.minimum(a, b), np.maximum(a, b)


@register_format
class MiddleburyFormat(SceneFormat):
    name = "middlebury"
    markers = ("*" + PAR_SUFFIX,)
    description = "Middlebury multi-view: *_par.txt (+ README.txt bounding box)"

    def load(self, root: Path, par_file: Optional[Union[str, Path]] = None,
             name: Optional[str] = None) -> SceneCatalogue:
        return catalogue_middlebury(root, par_file, name)


def load_middlebury(path: Union[str, Path], **options) -> Scene:
    """Load a Middlebury multi-view folder, every view decoded (options as :func:`catalogue_middlebury`)."""
    return catalogue_middlebury(path, **options).load()


def catalogue_middlebury(path: Union[str, Path], par_file: Optional[Union[str, Path]] = None,
                         name: Optional[str] = None) -> SceneCatalogue:
    """Catalogue of a Middlebury multi-view folder (see the module docstring)."""
    root = Path(path)
    par = find_par_file(root, par_file)
    names, K, R, t = parse_par_file(par)
    files = [root / n for n in names]
    for f in files:
        if not f.is_file():
            raise InputError(str(f), f"image listed in {par.name} not found")
    prefix = par.name[: -len(PAR_SUFFIX)]
    listed = {f.name for f in files}
    extra = sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                   and p.name.startswith(prefix) and p.name not in listed)
    if extra:
        raise InputError(str(par), f"{len(extra)} image(s) in the folder have no camera: {', '.join(extra[:5])}"
                                   f"{' ...' if len(extra) > 5 else ''}")
    W, H = common_image_size(files)
    vms = np.stack([viewmat(r, tt) for r, tt in zip(R, t)])
    cameras = to_cameras(K, vms, W, H, str(par))

    meta: dict = {"format": "middlebury", "camera_file": str(par)}
    depth_range = None
    readme = root / "README.txt"
    box = parse_bounding_box(readme) if readme.is_file() else None
    if box is not None:
        meta["bbox"] = (box[0].tolist(), box[1].tolist())
        depth_range = torch.from_numpy(depth_range_box(vms, *box).astype(np.float32))
    return SceneCatalogue(
        name=name or root.resolve().name,
        format="middlebury",
        cameras=cameras,
        image_names=names,
        views=[ViewFiles(p, (W, H)) for p in files],
        depth_range=depth_range,
        units="metres",
        source=f"middlebury:{root}",
        meta=meta,
    )
