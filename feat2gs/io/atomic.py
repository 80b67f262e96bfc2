"""Atomic file writes and writable-folder checks: the one place that writes through a temporary file.

``atomic_write(path, write)`` calls ``write(tmp)`` on a uniquely named temporary file beside ``path`` (same
folder, so the final ``os.replace`` is atomic) and renames it over ``path``; a reader sees the old file or the
new one, never half of one, and a failed write leaves no temporary file behind.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable, Union

from ..errors import InputError

PathLike = Union[str, "os.PathLike[str]"]


def temporary_path(path: PathLike) -> Path:
    """A unique hidden temporary name beside ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")


def atomic_write(path: PathLike, write: Callable[[Path], object]) -> Path:
    """Write ``path`` atomically: ``write(tmp)`` fills a temporary file beside it, which then replaces it."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise
    return path


def atomic_write_text(path: PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def ensure_writable_dir(path: PathLike, where: str) -> Path:
    """Create the folder ``path`` (with parents) and check that a file can be created in it; ``InputError``
    naming ``where`` and the folder otherwise (an existing file there, a read-only filesystem, no
    permission)."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise InputError(where, f"{path} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = temporary_path(path / "write-check")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InputError(where, f"cannot write to {path} ({e.strerror or e})") from None
    return path
