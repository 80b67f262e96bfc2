"""On-disk, content-addressed cache of the scene stage: the initialisation and the evaluation mask of a
(scene, split, init, eval-mask) combination.

Every run of a scene shares them (the probe invariants), whatever process or executor runs it: the first run
computes them, the others read them. The key is the SHA-256 of the canonical JSON of everything they depend on
-- the working images and cameras of the train and test views (their bytes), the split, the initialiser name and
options, the evaluation-mask options -- and of the source files of the code that computes them (``init/``,
``geometry/``, ``data/``, ``evalmask.py``), so any change of input or code is a new entry. Files are written to
a temporary name and renamed (a reader never sees half a file); an unreadable entry is recomputed.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from .feature_cache import canonical_json, image_digest
from .io.atomic import atomic_write
from .paths import cache_root
from .scene import Scene

SCENE_STAGE_VERSION = 1
_CODE = ("init", "geometry", "data", "evalmask.py", "scene.py")


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    root = Path(__file__).resolve().parent
    h = hashlib.sha256(str(SCENE_STAGE_VERSION).encode())
    for entry in _CODE:
        p = root / entry
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        for f in files:
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def scene_digest(scene: Scene) -> str:
    """SHA-256 of a scene's images, cameras, masks, depths, sparse points and depth ranges."""
    parts = [None if t is None else image_digest(t) for t in
             (scene.images, scene.cameras.K, scene.cameras.viewmats, scene.masks, scene.depths,
              scene.sparse_points, scene.depth_range)]
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()


def stage_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json({**parts, "code": code_digest()}).encode()).hexdigest()


class TensorFileCache:
    """Content-addressed ``torch.save`` files (dicts of tensors and JSON-able values) under ``root``, one per
    key, written atomically; an unreadable or foreign entry counts as missing (recomputed and rewritten), an
    unwritable cache only costs recomputation. Used by the scene stage and the pose-free reconstructions."""

    def __init__(self, root: Path, enabled: bool = True):
        self.root = Path(root).expanduser()
        self.enabled = enabled

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.pt"

    def load(self, key: str) -> Optional[dict]:
        p = self.path(key)
        if not (self.enabled and p.is_file()):
            return None
        try:
            value = torch.load(p, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 -- a corrupt entry is recomputed and rewritten
            return None
        if not isinstance(value, dict) or value.get("_key") != key:
            return None
        return {k: v for k, v in value.items() if k != "_key"}

    def store(self, key: str, value: dict) -> None:
        if not self.enabled:
            return
        p = self.path(key)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(p, lambda tmp: torch.save({**value, "_key": key}, tmp))
        except OSError:
            pass

    def get_or_compute(self, key: str, fn: Callable[[], dict]) -> tuple[dict, bool]:
        """(value, hit)."""
        value = self.load(key)
        if value is not None:
            return value, True
        value = fn()
        self.store(key, value)
        return value, False


def scene_stage_cache(root: Optional[str] = None, enabled: bool = True) -> TensorFileCache:
    """The scene-stage cache: ``cache.dir_scenes``, else ``scenes/`` under the cache root."""
    return TensorFileCache(Path(root) if root else cache_root() / "scenes", enabled)
