"""Initialisers: cameras + a per-pixel world point map of the train views.

Importing this package registers the built-in initialisers in ``INITIALISERS``:
``dataset`` (GT depth + known poses, optional seeded noise), ``mvs`` (plane-sweep stereo, known poses) and
``moge`` (MoGe depth per view, aligned to the scene's sparse points or MVS depth by truncated ROE).
"""

from __future__ import annotations

import inspect
from typing import Any

from ..errors import InputError
from .base import INITIALISERS, Initialiser, PointInit
from .dataset import DatasetInit  # importing registers "dataset"
from .mvs import MVSInit  # importing registers "mvs"
from .moge import MoGeInit  # importing registers "moge"


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


__all__ = ["INITIALISERS", "Initialiser", "PointInit", "DatasetInit", "MVSInit", "MoGeInit", "build_initialiser"]
