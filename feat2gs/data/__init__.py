"""Scene loading: dataset formats, the synthetic scene, and sparse-view splits.

Every format is one module with one :class:`~feat2gs.data.formats.SceneFormat` (``detect``, ``load``) registered
in ``SCENE_FORMATS`` (see :mod:`feat2gs.data.formats` on adding one):

===============  ==============================================================================================
``scene.format`` recognised by
===============  ==============================================================================================
``llff``         ``poses_bounds.npy``
``idr``          ``cameras_sphere.npz`` or ``cameras.npz`` (IDR/NeuS)
``middlebury``   ``*_par.txt``
``colmap``       ``sparse/0/`` (or ``sparse/``) with ``cameras``/``images`` ``.bin`` or ``.txt``
``transforms``   ``transforms.json`` / ``transforms_train.json`` (nerfstudio, instant-ngp, Blender)
``mvsnet``       ``cams/*_cam.txt`` (DTU in MVSNet's layout, with ``depths/`` and masks)
``feat2gs``      ``dataset_split.json`` in a parent folder that lists the scene (the Feat2GS benchmark layout)
``synthetic``    ``scene.path=synthetic``
===============  ==============================================================================================

``open_scene(path, format=None, **options)`` returns a :class:`SceneCatalogue` (cameras, names, files; no pixels);
``load_scene(path, format=None, views=None, long_side=None, multiple=1, **options)`` decodes the views asked
for, resized on load. Every scene uses OpenCV world-to-camera ``viewmats`` and pixel-centre intrinsics
(:mod:`feat2gs.scene`).
"""

from __future__ import annotations

from ..scene import Scene, Split
from .catalogue import SceneCatalogue, ViewFiles
from .formats import SCENE_FORMATS, SYNTHETIC, SceneFormat, detect_format, get_format, load_scene, open_scene
from .llff import load_llff  # importing each format module registers it (this order = detection message order)
from .idr import load_idr
from .middlebury import load_middlebury
from .colmap import catalogue_colmap, write_colmap, write_colmap_scene
from .transforms import catalogue_transforms, write_transforms, write_transforms_scene
from .mvsnet import catalogue_mvsnet, write_mvsnet
from .feat2gs_layout import catalogue_feat2gs
from .synthetic import SyntheticOptions, make_synthetic_scene
from .split import DTU_SPARSE_TEST, DTU_SPARSE_TRAIN, dtu_sparse_split, make_split, view_distances

__all__ = [
    "DTU_SPARSE_TEST", "DTU_SPARSE_TRAIN", "SCENE_FORMATS", "SYNTHETIC", "Scene", "SceneCatalogue", "SceneFormat",
    "Split", "SyntheticOptions", "ViewFiles", "detect_format", "dtu_sparse_split", "get_format", "load_idr",
    "load_llff", "load_middlebury", "load_scene", "make_split", "make_synthetic_scene", "open_scene",
    "view_distances", "catalogue_colmap", "write_colmap", "write_colmap_scene", "catalogue_transforms",
    "write_transforms", "write_transforms_scene", "catalogue_mvsnet", "write_mvsnet", "catalogue_feat2gs",
]
