"""Scene loading: dataset formats, the synthetic scene, and sparse-view splits.

``load_scene(path, **options)`` detects the format of a scene folder from its files:

==============  =====================================================  =============================
format          recognised by                                          loader
==============  =====================================================  =============================
``llff``        ``poses_bounds.npy``                                   :func:`load_llff`
``idr``         ``cameras_sphere.npz`` or ``cameras.npz`` (IDR/NeuS)   :func:`load_idr`
``middlebury``  ``*_par.txt``                                          :func:`load_middlebury`
==============  =====================================================  =============================

``load_scene("synthetic", seed=..., num_views=..., ...)`` returns :func:`make_synthetic_scene`'s scene;
``format=`` forces a format. Every loader returns a :class:`~feat2gs.scene.Scene` with OpenCV world-to-camera
``viewmats`` and intrinsics in the pixel-centre convention of :mod:`feat2gs.scene`.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable, Optional, Union

from ..errors import InputError
from ..registry import Registry
from ..scene import Scene, Split
from .idr import CAMERA_FILES as IDR_CAMERA_FILES
from .idr import load_idr
from .llff import POSES_FILE, load_llff
from .middlebury import PAR_SUFFIX, load_middlebury
from .split import DTU_SPARSE_TEST, DTU_SPARSE_TRAIN, dtu_sparse_split, make_split, view_distances
from .synthetic import SyntheticOptions, make_synthetic_scene

SCENE_FORMATS: Registry[Callable[..., Scene]] = Registry("scene format")
SCENE_FORMATS.add("llff", load_llff, markers=(POSES_FILE,))
SCENE_FORMATS.add("idr", load_idr, markers=IDR_CAMERA_FILES)
SCENE_FORMATS.add("middlebury", load_middlebury, markers=("*" + PAR_SUFFIX,))
SCENE_FORMATS.add("synthetic", make_synthetic_scene, markers=())

SYNTHETIC = "synthetic"


def detect_format(path: Union[str, Path]) -> str:
    """The format name of a scene folder (see the module docstring); InputError naming the folder and the
    files looked for when none (or more than one) format matches."""
    root = Path(path)
    if not root.is_dir():
        raise InputError(str(root), "scene folder not found")
    found = [e.name for e in SCENE_FORMATS if any(any(root.glob(m)) for m in e.meta["markers"])]
    if len(found) == 1:
        return found[0]
    looked = "; ".join(f"{', '.join(e.meta['markers'])} ({e.name})" for e in SCENE_FORMATS if e.meta["markers"])
    if not found:
        raise InputError(str(root), f"cannot tell the scene format: looked for {looked}")
    raise InputError(str(root), f"ambiguous scene format (files of {', '.join(found)}); pass format=")


def load_scene(path: Union[str, Path], format: Optional[str] = None, **options) -> Scene:
    """Load a scene folder (format auto-detected unless ``format`` is given) or, for ``path="synthetic"``,
    build the synthetic scene. ``options`` go to the format's loader; unknown ones raise InputError."""
    if format is None:
        format = SYNTHETIC if str(path) == SYNTHETIC else detect_format(path)
    loader = SCENE_FORMATS.entry(format).factory
    params = inspect.signature(loader).parameters
    if format == SYNTHETIC:
        known = [p for p in params if p != "options"] + [f for f in SyntheticOptions.__dataclass_fields__]
        args: tuple = ()
    else:
        known = [p for p in params if p != "path"]
        args = (path,)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise InputError(f"{format}.{unknown[0]}", f"unknown option for {format} scenes; known: {', '.join(known)}")
    return loader(*args, **options)


__all__ = [
    "DTU_SPARSE_TEST", "DTU_SPARSE_TRAIN", "SCENE_FORMATS", "Scene", "Split", "detect_format", "dtu_sparse_split",
    "load_idr", "load_llff", "load_middlebury", "load_scene", "make_split", "make_synthetic_scene", "view_distances",
]
