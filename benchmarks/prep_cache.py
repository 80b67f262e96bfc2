"""On-disk cache of the scene stage (``feat2gs.pipeline.prepare_scene``): scene at the working resolution,
split, initialisation, evaluation masks -- everything a run needs that does not depend on the backbone or the
mode. Jobs of a sweep share it through the file system, so any process (a local worker, a Ray task) can run
any job and a resumed sweep does not redo it.

Content-addressed: the key is the SHA-256 of the resolved config without the keys the scene stage does not
read (backbone, probe mode and head width, PCA size, training, render backend, output/cache locations,
device) and of the source code of the ``feat2gs`` package, so changing the code or a scene/split/init/eval
key gives a new entry. Files are written atomically (temporary file + rename); an unreadable entry is
recomputed.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Optional

import torch
from omegaconf import DictConfig, OmegaConf

from feat2gs.pipeline import PreparedScene, prepare_scene
from feat2gs.run import seed_everything

from .records import _drop, canonical_json

#: config keys that the scene stage does not read
NOT_IN_KEY = ("backbone", "probe.mode", "probe.hidden", "probe.pca_dim", "train", "render", "output", "cache",
              "device")

_SOURCE_DIGEST: Optional[str] = None


def source_digest() -> str:
    """SHA-256 of the feat2gs package's Python sources (computed once per process)."""
    global _SOURCE_DIGEST
    if _SOURCE_DIGEST is None:
        import feat2gs

        root = Path(feat2gs.__file__).resolve().parent
        h = hashlib.sha256()
        for f in sorted(root.rglob("*.py")):
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
        _SOURCE_DIGEST = h.hexdigest()
    return _SOURCE_DIGEST


def prep_key(cfg: DictConfig) -> str:
    tree = OmegaConf.to_container(cfg, resolve=True)
    for k in NOT_IN_KEY:
        _drop(tree, k)
    return hashlib.sha256((canonical_json(tree) + source_digest()).encode()).hexdigest()


def default_root(cfg: Optional[DictConfig] = None) -> Path:
    """``$FEAT2GS_PREP_CACHE_DIR``, else ``_prepared/`` inside the feature cache folder (``cache.dir``)."""
    env = os.environ.get("FEAT2GS_PREP_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from feat2gs.feature_cache import default_cache_dir

    d = OmegaConf.select(cfg, "cache.dir", default=None) if cfg is not None else None
    return (Path(str(d)).expanduser() if d else default_cache_dir()) / "_prepared"


def cached_prepare_scene(cfg: DictConfig, root: Optional[Path] = None) -> tuple[PreparedScene, bool]:
    """(the scene stage of ``cfg``, whether it came from the cache). Seeds like ``run_probe`` does before
    preparing the scene, so a cached and a fresh preparation are the same."""
    root = Path(root) if root else default_root(cfg)
    key = prep_key(cfg)
    path = root / key[:2] / f"{key}.pt"
    if path.is_file():
        try:
            prep = torch.load(path, map_location="cpu", weights_only=False)
            if isinstance(prep, PreparedScene):
                return prep, True
        except Exception as e:  # corrupt or from an incompatible version: recompute
            warnings.warn(f"prepared-scene cache entry {path} unreadable ({type(e).__name__}); recomputing")
    seed_everything(int(cfg.seed))
    prep = prepare_scene(cfg)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        torch.save(prep, tmp)
        os.replace(tmp, path)
    except OSError as e:
        warnings.warn(f"cannot write the prepared-scene cache {path}: {e}")
    return prep, False
