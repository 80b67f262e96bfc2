"""One sweep job, as any executor runs it: build the config, run the probe (``feat2gs.pipeline.run_probe``;
scene stage and features through their on-disk caches), write ``job.json`` last, and return the run's
:class:`RunRecord` read back from its folder. Never raises for a failing run: the error comes back in a
``failed`` record.

Jobs are plain picklable dataclasses (no tensors, no open files), so a worker process or a Ray task can run
any of them; everything they share (prepared scenes, features) goes through the caches on disk.
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .records import FAILED, JOB_FILE, RunIdentity, RunRecord, RunResult, record_from_run_dir


@dataclass(frozen=True)
class Job:
    identity: RunIdentity
    overrides: tuple[str, ...]
    preset: Optional[str]
    run_dir: str  # absolute folder of this run (removed first if a crashed attempt left it)
    suite: str
    progress_dir: Optional[str] = None  # where the job writes its current stage (<run_id>.stage)
    threads: Optional[int] = None  # torch CPU threads (set by the executor; the same for every executor)

    @property
    def run_id(self) -> str:
        return self.identity.run_id


def write_stage(job: Job, stage: str) -> None:
    if not job.progress_dir:
        return
    p = Path(job.progress_dir) / f"{job.run_id}.stage"
    try:
        tmp = p.with_name(p.name + f".{os.getpid()}.tmp")
        tmp.write_text(stage)
        os.replace(tmp, p)
    except OSError:
        pass


def read_stage(progress_dir: Path, run_id: str) -> Optional[str]:
    try:
        return (Path(progress_dir) / f"{run_id}.stage").read_text()
    except OSError:
        return None


# ----------------------------------------------------------------------------------------- peak memory
def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux ``/proc/self/clear_refs`` 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024.0 * 1024.0) if sys.platform == "darwin" else kb / 1024.0


def threads_per_job(jobs: int) -> int:
    """CPU threads of each of ``jobs`` concurrent jobs: the machine's cores divided between them."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def device_label(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({torch.get_num_threads()} threads)"


# ------------------------------------------------------------------------------------------------ run
def execute(job: Job) -> RunRecord:
    """Run one job to completion or failure; the returned record is what the sweep stores.

    The stages run here so that the sweep can show them (``scene``, ``features``, ``train+eval``), then
    ``run_probe`` gets them: the scene stage through feat2gs's on-disk scene-stage cache, features through the
    feature cache, seeded exactly as a plain ``run_probe`` seeds them."""
    import torch
    from omegaconf import OmegaConf

    from feat2gs.config import load_config
    from feat2gs.pipeline import prepare_features, prepare_scene, resolve_device, run_probe
    from feat2gs.run import seed_everything, write_json

    run_dir = Path(job.run_dir)
    t0 = time.perf_counter()
    try:
        write_stage(job, "scene")
        if run_dir.exists():  # a crashed attempt's leftovers: never counted, start afresh
            shutil.rmtree(run_dir)
        _reset_peak_rss()
        if job.threads:
            torch.set_num_threads(job.threads)
        cfg = load_config(job.overrides, preset=job.preset)
        OmegaConf.update(cfg, "output.root", str(run_dir.parent))
        OmegaConf.update(cfg, "output.name", run_dir.name)
        device = resolve_device(str(cfg.device))
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        seed_everything(int(cfg.seed))
        t = time.perf_counter()
        prep = prepare_scene(cfg)
        t_scene = time.perf_counter() - t
        write_stage(job, "features")
        t = time.perf_counter()
        feats = prepare_features(cfg, prep, device)
        t_feats = time.perf_counter() - t
        write_stage(job, "train+eval")
        run = run_probe(cfg, prep=prep, feats=feats, run_name=run_dir.name)
        if run.path.resolve() != run_dir.resolve():
            raise RuntimeError(f"run folder {run.path} is not the planned {run_dir}")
        write_stage(job, "record")
        info = {"run_id": job.run_id, "suite": job.suite, "preset": job.preset, "dataset": job.identity.dataset,
                "wall_s": time.perf_counter() - t0, "prepare_scene_s": t_scene, "features_s": t_feats,
                "peak_mem_mb": _peak_rss_mb(),
                "peak_gpu_mem_mb": (torch.cuda.max_memory_allocated() / 2 ** 20 if device.startswith("cuda")
                                    else None),
                "device": device_label(device), "threads": torch.get_num_threads(), "pid": os.getpid()}
        write_json(run_dir / JOB_FILE, info)  # last: the folder is complete once this exists
        rec = record_from_run_dir(run_dir, preset=job.preset, dataset=job.identity.dataset, require_job=True)
        if rec.run_id != job.run_id:
            raise RuntimeError(f"the run folder's identity {rec.run_id} differs from the planned {job.run_id}")
        return rec
    except Exception as e:
        err = "".join(traceback.format_exception_only(type(e), e)).strip()
        res = RunResult(status=FAILED, error=err, suite=job.suite, wall_s=time.perf_counter() - t0,
                        run_dir=str(run_dir) if run_dir.exists() else None)
        return RunRecord(job.identity, res)
    finally:
        write_stage(job, "done")
