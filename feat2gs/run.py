"""Run folders and provenance: every run records its resolved config, seed, package versions, git revision,
timings and status. A run is complete only when ``meta.json`` says ``"status": "complete"`` -- written last."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from contextlib import contextmanager
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("torch", "torchvision", "numpy", "scipy", "gsplat", "timm", "transformers", "open_clip_torch",
            "diffusers", "lpips", "torchmetrics", "omegaconf", "scikit-learn", "huggingface_hub")


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def package_versions(packages=PACKAGES) -> dict[str, Optional[str]]:
    """Installed versions of ``packages`` (None when not installed)."""
    out = {}
    for p in packages:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def git_revision() -> dict[str, Any]:
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)

    try:
        rev = git("rev-parse", "HEAD")
        if rev.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").stdout.strip())
        return {"commit": rev.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def provenance(seed: int) -> dict[str, Any]:
    return {
        "seed": seed,
        "versions": {"python": platform.python_version(), **package_versions()},
        "git": git_revision(),
        "host": {"platform": platform.platform(), "machine": platform.machine(),
                 "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                 "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
    }


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_jsonable(obj), indent=2) + "\n")
    tmp.replace(path)


class Timer:
    """Named wall-clock timings (seconds)."""

    def __init__(self):
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t


class RunDir:
    """A run folder: config.yaml, meta.json (status, provenance, timings), metrics.json, renders/, ...

    ``meta.json`` is written with status "running" on creation and rewritten as "complete" or "failed"
    (with the error) at the end, so an interrupted or failed run is never mistaken for a finished one.
    """

    def __init__(self, path: Path, cfg: DictConfig, seed: int):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=False)
        (self.path / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        self.meta = {"status": "running", "started": datetime.now().isoformat(timespec="seconds"),
                     **provenance(seed)}
        self.timer = Timer()
        self._write_meta()

    @classmethod
    def create(cls, root: str, name: str, cfg: DictConfig, seed: int) -> "RunDir":
        root_p = Path(root)
        root_p.mkdir(parents=True, exist_ok=True)
        path, k = root_p / name, 1
        while path.exists():
            k += 1
            path = root_p / f"{name}-{k}"
        return cls(path, cfg, seed)

    def _write_meta(self) -> None:
        write_json(self.path / "meta.json", {**self.meta, "timings_s": self.timer.times})

    def write_json(self, name: str, obj: Any) -> Path:
        p = self.path / name
        write_json(p, obj)
        return p

    def finish(self, status: str = "complete", error: Optional[str] = None, **extra: Any) -> None:
        self.meta.update(status=status, finished=datetime.now().isoformat(timespec="seconds"), **extra)
        if error:
            self.meta["error"] = error
        self._write_meta()


def is_complete(run_path: Path) -> bool:
    try:
        return json.loads((Path(run_path) / "meta.json").read_text()).get("status") == "complete"
    except (OSError, ValueError):
        return False


def default_run_name(cfg: DictConfig) -> str:
    scene = Path(str(cfg.scene.path)).name or "scene"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = cfg.backbone.name
    backbone = "+".join(str(n) for n in name) if OmegaConf.is_list(name) else str(name)
    return f"{stamp}_{scene}_{backbone}_{cfg.probe.mode}"
