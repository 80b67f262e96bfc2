"""Run folders and provenance: every run records its resolved config, seed, package versions, git revision,
timings and status. A run is complete only when ``meta.json`` says ``"status": "complete"`` -- written last."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import threading
import time
import traceback
from contextlib import contextmanager
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from . import progress
from .errors import Feat2GSError, Terminated
from .io.atomic import atomic_write_text, ensure_writable_dir

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
    atomic_write_text(path, json.dumps(_jsonable(obj), indent=2) + "\n")


class Timer:
    """Named wall-clock timings (seconds); ``on_done(name, seconds)`` is called as each one ends."""

    def __init__(self, on_done=None):
        self.times: dict[str, float] = {}
        self.on_done = on_done

    @contextmanager
    def __call__(self, name: str):
        t = time.perf_counter()
        ok = False
        try:
            yield
            ok = True
        finally:
            dt = time.perf_counter() - t
            self.times[name] = self.times.get(name, 0.0) + dt
            if ok and self.on_done is not None:
                self.on_done(name, dt)


# ------------------------------------------------------------------------------------------- lifecycle
#: seconds between heartbeats of a running run (``meta.json["heartbeat"]``)
HEARTBEAT_S = float(os.environ.get("FEAT2GS_HEARTBEAT_S", "30"))
#: a running run on another host is reported stale when its heartbeat is older than this
STALE_AFTER_S = 10 * HEARTBEAT_S


#: how the pipeline's timed stages (``meta.json["timings_s"]`` keys) are named in the progress lines
STAGE_NAMES = {"prepare_scene": "scene, split and initialisation", "features": "features",
               "train": "training (warm-up + photometric)", "evaluate": "evaluation (test-pose refinement, scores)",
               "write": "writing outputs"}


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def process_start_ticks(pid: int) -> Optional[int]:
    """The start time of process ``pid`` in clock ticks since boot (Linux ``/proc``), None when unknown; with
    the pid it identifies a process even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def process_alive(pid: int, start_ticks: Optional[int] = None) -> Optional[bool]:
    """Whether process ``pid`` (started at ``start_ticks``, when given) still runs on this host; None when
    that cannot be told."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    except (OSError, ValueError, OverflowError):
        return None
    if start_ticks is not None:
        now = process_start_ticks(int(pid))
        if now is not None and now != start_ticks:
            return False  # the pid was reused
    return True


def describe_error(e: BaseException) -> str:
    """The reason a run failed, in one line (no traceback)."""
    if isinstance(e, KeyboardInterrupt):
        return "interrupted (SIGINT)"
    if isinstance(e, Terminated):
        return f"terminated by {e.signal_name}"
    if isinstance(e, OSError) and not isinstance(e, Feat2GSError):
        where = e.filename if e.filename is not None else "file system"
        return f"{where}: {e.strerror or e}"
    if isinstance(e, Feat2GSError):
        return str(e)
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def is_expected(e: BaseException) -> bool:
    """Errors that are the user's input or environment (reported in one line, no traceback)."""
    return isinstance(e, (Feat2GSError, OSError, KeyboardInterrupt, Terminated))


class RunDir:
    """A run folder: config.yaml, meta.json (status, process, heartbeat, provenance, timings), metrics.json, ...

    ``meta.json`` is written with status "running" on creation, together with the process (``pid``,
    ``hostname``, ``pid_start_ticks``) and a ``heartbeat`` refreshed every ``HEARTBEAT_S`` seconds by a
    background thread, and rewritten as "complete" or "failed" (with the error) at the end, so an interrupted
    or failed run is never mistaken for a finished one; ``run_state`` tells a dead "running" run (``stale``)
    from a live one.
    """

    def __init__(self, path: Path, cfg: DictConfig, seed: int):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=False)
        atomic_write_text(self.path / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        now = _now()
        self.meta = {"status": "running", "started": now, "heartbeat": now, "pid": os.getpid(),
                     "pid_start_ticks": process_start_ticks(os.getpid()), "hostname": socket.gethostname(),
                     **provenance(seed)}
        self.timer = Timer(self._stage_done)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._write_meta()
        self._beat = threading.Thread(target=self._heartbeat_loop, name="feat2gs-heartbeat", daemon=True)
        self._beat.start()

    @classmethod
    def create(cls, root: str, name: str, cfg: DictConfig, seed: int) -> "RunDir":
        root_p = ensure_writable_dir(root, "output.root")
        path, k = root_p / name, 1
        while path.exists():
            k += 1
            path = root_p / f"{name}-{k}"
        return cls(path, cfg, seed)

    # ------------------------------------------------------------------ meta.json
    def _write_meta(self) -> None:
        with self._lock:
            write_json(self.path / "meta.json", {**self.meta, "timings_s": dict(self.timer.times)})

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self.heartbeat()

    def heartbeat(self) -> None:
        """Refresh ``meta.json["heartbeat"]`` (best effort: a write failure is left to the run's own writes)."""
        if self.meta.get("status") != "running":
            return
        self.meta["heartbeat"] = _now()
        try:
            self._write_meta()
        except Exception:  # noqa: BLE001 -- never let the heartbeat thread print a traceback
            pass

    def _stage_done(self, name: str, seconds: float) -> None:
        progress.stage_done(STAGE_NAMES.get(name, name), seconds)
        self.heartbeat()

    def write_json(self, name: str, obj: Any) -> Path:
        p = self.path / name
        write_json(p, obj)
        return p

    def finish(self, status: str = "complete", error: Optional[str] = None, **extra: Any) -> None:
        """Final status. A failure to write it (a read-only or full disk) is raised for a complete run and
        swallowed for a failed one, so that the original error is what gets reported."""
        self._stop.set()
        self.meta.update(status=status, finished=_now(), heartbeat=_now(), **extra)
        if error:
            self.meta["error"] = error
        try:
            self._write_meta()
        except OSError:
            if status == "complete":
                raise

    def fail(self, e: BaseException) -> None:
        """Mark the run failed with the reason ``e``; unexpected errors also get their traceback written to
        ``error.log``. ``e.run_path`` is set (when possible) so the CLI can point at the folder."""
        extra = {}
        if not is_expected(e):
            try:
                (self.path / "error.log").write_text("".join(traceback.format_exception(type(e), e, e.__traceback__)))
                extra["log"] = "error.log"
            except OSError:
                pass
        self.finish("failed", error=describe_error(e), **extra)
        try:
            e.run_path = self.path  # type: ignore[attr-defined]
        except AttributeError:
            pass


def read_meta(run_path: Path) -> Optional[dict]:
    try:
        meta = json.loads((Path(run_path) / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def run_state(run_path: Path, meta: Optional[dict] = None) -> tuple[str, str]:
    """(state, reason) of a run folder: ``complete``, ``failed`` (with the error), ``running`` (its process
    is alive, or on another host with a fresh heartbeat), ``stale`` (status "running" but its process is
    gone, or no heartbeat for ``STALE_AFTER_S``) or ``unknown`` (no readable ``meta.json``)."""
    meta = meta if meta is not None else read_meta(run_path)
    if meta is None:
        return "unknown", "no readable meta.json"
    status = meta.get("status")
    if status == "complete":
        return "complete", ""
    if status == "failed":
        return "failed", str(meta.get("error", ""))
    if status != "running":
        return "unknown", f"status {status!r}"
    pid, host = meta.get("pid"), meta.get("hostname")
    if pid is not None and host == socket.gethostname():
        alive = process_alive(pid, meta.get("pid_start_ticks"))
        if alive is False:
            return "stale", f"process {pid} is gone (killed?) without marking the run finished"
        if alive:
            return "running", f"process {pid}"
    try:
        age = (datetime.now().astimezone() - datetime.fromisoformat(str(meta.get("heartbeat")))).total_seconds()
    except (TypeError, ValueError):
        return "stale", "no heartbeat"
    if age > STALE_AFTER_S:
        return "stale", f"no heartbeat for {age:.0f} s"
    return "running", f"heartbeat {age:.0f} s ago" + (f" on {host}" if host else "")


def is_complete(run_path: Path) -> bool:
    return run_state(run_path)[0] == "complete"


def default_run_name(cfg: DictConfig) -> str:
    scene = Path(str(cfg.scene.path)).name or "scene"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = cfg.backbone.name
    backbone = "+".join(str(n) for n in name) if OmegaConf.is_list(name) else str(name)
    return f"{stamp}_{scene}_{backbone}_{cfg.probe.mode}"
