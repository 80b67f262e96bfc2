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
import json
import os
import uuid
from pathlib import Path
from typing import Any, Callable, Optional

import torch

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
    """SHA-256 of a scene's images, cameras, masks and depths (what the scene stage reads)."""
    h = hashlib.sha256()
    for t in (scene.images, scene.cameras.K, scene.cameras.viewmats, scene.masks, scene.depths,
              scene.sparse_points, scene.depth_range):
        if t is None:
            h.update(b"-")
        else:
            a = t.detach().cpu().contiguous()
            h.update(repr((tuple(a.shape), str(a.dtype))).encode())
            h.update(a.numpy().tobytes())
    return h.hexdigest()


def stage_key(parts: dict[str, Any]) -> str:
    text = json.dumps({**parts, "code": code_digest()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class SceneStageCache:
    """``get_or_compute(key, fn)``: the dict of tensors / JSON-able values ``fn()`` returned for ``key``."""

    def __init__(self, root: Optional[str] = None, enabled: bool = True):
        self.root = Path(root).expanduser() if root else cache_root() / "scenes"
        self.enabled = enabled

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.pt"

    def get_or_compute(self, key: str, fn: Callable[[], dict]) -> tuple[dict, bool]:
        """(value, hit)."""
        if self.enabled:
            p = self.path(key)
            if p.is_file():
                try:
                    value = torch.load(p, map_location="cpu", weights_only=True)
                    if isinstance(value, dict) and value.get("_key") == key:
                        value = dict(value)
                        value.pop("_key")
                        value["meta_json"] = value.get("meta_json", "{}")
                        return value, True
                except Exception:  # noqa: BLE001 -- a corrupt entry is recomputed and rewritten
                    pass
        value = fn()
        if self.enabled:
            self._write(key, value)
        return value, False

    def _write(self, key: str, value: dict) -> None:
        p = self.path(key)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            torch.save({**value, "_key": key}, tmp)
            os.replace(tmp, p)
        except OSError:
            tmp.unlink(missing_ok=True)  # an unwritable cache only costs recomputation
