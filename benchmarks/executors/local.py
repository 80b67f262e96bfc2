"""``local``: jobs in worker processes on this machine (``--jobs N`` processes, spawned fresh).

With several CUDA devices visible, each worker is pinned to one of them (``CUDA_VISIBLE_DEVICES``) and the
default number of workers is the number of devices. On CPU, the cores are divided between the workers
(torch threads). Workers die with the sweep (Linux parent-death signal), so a killed sweep leaves no
orphan writing run folders.
"""

from __future__ import annotations

import dataclasses
import concurrent.futures as cf
import multiprocessing as mp
import os
import signal
from concurrent.futures.process import BrokenProcessPool
from typing import Optional, Sequence

from ..jobs import Job, execute, threads_per_job
from ..records import FAILED, RunRecord, RunResult
from . import Executor


def visible_gpus() -> list[str]:
    """CUDA device ids this process may use (without initialising CUDA in the sweep process)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:
        return []


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _init_worker(gpu_queue, threads: int) -> None:
    _die_with_parent()
    os.environ.setdefault("TQDM_DISABLE", "1")
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_queue.get()
    import torch

    torch.set_num_threads(max(1, threads))


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, jobs: Optional[int] = None):
        gpus = visible_gpus()
        super().__init__(jobs if jobs else max(1, len(gpus)))
        self._gpus = gpus
        self._pool: Optional[cf.ProcessPoolExecutor] = None
        self._futures: dict[cf.Future, Job] = {}

    def start(self, jobs: Sequence[Job]) -> None:
        ctx = mp.get_context("spawn")
        queue = None
        if len(self._gpus) > 1:
            queue = ctx.Queue()
            for i in range(self.jobs):
                queue.put(self._gpus[i % len(self._gpus)])
        threads = threads_per_job(self.jobs)
        self._pool = cf.ProcessPoolExecutor(max_workers=self.jobs, mp_context=ctx, initializer=_init_worker,
                                            initargs=(queue, threads))
        jobs = [dataclasses.replace(j, threads=threads) for j in jobs]
        self._futures = {self._pool.submit(execute, job): job for job in jobs}

    def poll(self, timeout: float) -> list[RunRecord]:
        if not self._futures:
            return []
        done, _ = cf.wait(list(self._futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out = []
        for fut in done:
            job = self._futures.pop(fut)
            try:
                out.append(fut.result())
            except BrokenProcessPool as e:
                out.append(_failed(job, f"worker process died ({e})"))
            except Exception as e:  # pickling errors and the like
                out.append(_failed(job, f"{type(e).__name__}: {e}"))
        return out

    def unfinished(self) -> int:
        return len(self._futures)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _failed(job: Job, error: str) -> RunRecord:
    return RunRecord(job.identity, RunResult(status=FAILED, error=error, suite=job.suite))


EXECUTOR = LocalExecutor
