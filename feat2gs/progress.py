"""Progress of the stages of a run, on stderr.

Off by default (library use stays quiet); the CLI turns it on. Interactive terminals get a live bar with an
ETA for the long loops (``bar``: tqdm), everything else one line per stage (``stage_done``), e.g.
``feat2gs: train 12.3 s``. Warnings go to stderr always (``warn``).
"""

from __future__ import annotations

import sys
from typing import Optional

from tqdm.auto import tqdm

_enabled = False


def enable(on: bool = True) -> None:
    global _enabled
    _enabled = bool(on)


def enabled() -> bool:
    return _enabled


def interactive() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def bar(total: int, desc: str) -> tqdm:
    """A live bar with an ETA on an interactive terminal; disabled otherwise (or when progress is off)."""
    return tqdm(total=total, desc=desc, leave=False, disable=not (_enabled and interactive()), file=sys.stderr)


def stage_done(name: str, seconds: float, detail: Optional[str] = None) -> None:
    """One line for a finished stage (when progress is on)."""
    if _enabled:
        extra = f" ({detail})" if detail else ""
        tqdm.write(f"feat2gs: {name} {seconds:.1f} s{extra}", file=sys.stderr)  # above a live bar, if any


def warn(message: str) -> None:
    print(f"feat2gs: warning: {message}", file=sys.stderr, flush=True)
