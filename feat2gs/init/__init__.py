"""Initialisers: cameras + a per-pixel world point map of the train views.

Importing this package registers the built-in initialisers in ``INITIALISERS``:
``dataset`` (GT depth + known poses, optional seeded noise), ``mvs`` (plane-sweep stereo, known poses) and
``moge`` (MoGe depth per view, aligned to the scene's sparse points or MVS depth by truncated ROE); pose-free
(cameras recovered from the images, ``pose_free = True``): ``dust3r`` / ``mast3r`` (two-view network + global
alignment) and ``colmap`` (pycolmap SfM + dense ``mvs`` depth on the recovered cameras).
"""

from __future__ import annotations

import inspect
from typing import Any

from ..errors import InputError
from .base import INITIALISERS, Initialiser, PointInit
from .dataset import DatasetInit  # importing registers "dataset"
from .mvs import MVSInit  # importing registers "mvs"
from .moge import MoGeInit  # importing registers "moge"
from .dust3r import Dust3RInit, MASt3RInit  # importing registers "dust3r" and "mast3r" (pose-free)
from .colmap import ColmapInit  # importing registers "colmap" (pose-free, weight-free)


def build_initialiser(name: str, **options: Any) -> Initialiser:
    """The initialiser registered as ``name``, configured with ``options`` (the ``init.<name>`` config).

    Unknown names raise ``UnknownNameError``; unknown or missing options raise ``InputError`` naming
    ``init.<name>`` and listing the accepted options.
    """
    factory = INITIALISERS.entry(name).factory
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as err:
        params = [p for p in inspect.signature(factory).parameters if p != "self"]
        raise InputError("init.options", f"{err}; accepted options: {', '.join(params) or '(none)'}") from None
    return factory(**options)


__all__ = ["INITIALISERS", "Initialiser", "PointInit", "DatasetInit", "MVSInit", "MoGeInit", "Dust3RInit",
           "MASt3RInit", "ColmapInit", "build_initialiser"]
