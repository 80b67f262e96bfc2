"""``ray``: every job as a Ray task (``num_cpus`` per task: this machine's cores / ``--jobs``, which is also
its torch thread count, as with ``local``; one GPU per task when the cluster has GPUs, and by default as many
tasks at a time as GPUs).

Without ``RAY_ADDRESS`` a local Ray instance is started in this process (``--jobs`` CPUs, no dashboard) and
shut down at the end; with it, tasks go to that cluster, whose nodes must see the same file system (run
folders, caches). Task workers get this checkout on ``PYTHONPATH`` so they import the same code as the
sweep.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Optional, Sequence

from ..jobs import Job, execute, threads_per_job
from ..records import FAILED, RunRecord, RunResult
from . import Executor

REPO_ROOT = str(Path(__file__).resolve().parents[2])


def _run(job: Job) -> RunRecord:
    os.environ.setdefault("TQDM_DISABLE", "1")
    return execute(job)


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, jobs: Optional[int] = None):
        super().__init__(jobs or 1)
        self._requested = jobs
        self._refs: dict = {}
        self._started_ray = False

    def start(self, jobs: Sequence[Job]) -> None:
        try:
            import ray
        except ImportError:
            from feat2gs.errors import InputError

            raise InputError("--executor ray", "Ray is not installed (pip install 'feat2gs[ray]')") from None
        if not ray.is_initialized():
            env = {"PYTHONPATH": os.pathsep.join(p for p in (REPO_ROOT, os.environ.get("PYTHONPATH")) if p),
                   "TQDM_DISABLE": "1"}
            kwargs = dict(runtime_env={"env_vars": env}, log_to_driver=False, configure_logging=False)
            if not os.environ.get("RAY_ADDRESS"):
                # "local": a new instance of our own, never a cluster some other process left running
                kwargs.update(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False)
            ray.init(**kwargs)
            self._started_ray = True
        resources = ray.cluster_resources()
        n_gpus = int(resources.get("GPU", 0))
        self.jobs = self._requested or max(1, n_gpus)  # default: one task per GPU, else one at a time
        threads = threads_per_job(self.jobs)  # as the local executor, so both compute the same numbers
        task = ray.remote(num_cpus=min(threads, max(1, int(resources.get("CPU", 1)))), num_gpus=1 if n_gpus else 0,
                          max_retries=0)(_run)
        self._refs = {task.remote(dataclasses.replace(job, threads=threads)): job for job in jobs}

    def poll(self, timeout: float) -> list[RunRecord]:
        import ray

        if not self._refs:
            return []
        ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        if ready:
            more, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)
            ready = list(dict.fromkeys([*ready, *more]))
        out = []
        for ref in ready:
            job = self._refs.pop(ref)
            try:
                out.append(ray.get(ref))
            except Exception as e:  # the task's worker died, or Ray failed to run it
                out.append(RunRecord(job.identity, RunResult(status=FAILED, error=f"ray: {type(e).__name__}: {e}",
                                                             suite=job.suite)))
        return out

    def unfinished(self) -> int:
        return len(self._refs)

    def close(self) -> None:
        import ray

        for ref in list(self._refs):
            ray.cancel(ref, force=True)
        self._refs = {}
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
        self._started_ray = False


EXECUTOR = RayExecutor
