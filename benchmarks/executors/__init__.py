"""Executors: how a sweep's jobs run. One module per executor, registered in ``EXECUTORS``:

* ``local`` (:mod:`.local`): worker processes on this machine (one per GPU when several are visible);
* ``ray`` (:mod:`.ray`): Ray tasks with CPU/GPU resources (a local Ray instance, or the cluster at
  ``RAY_ADDRESS``).

An executor is started with the jobs and polled for finished :class:`~benchmarks.records.RunRecord` s;
every job runs :func:`benchmarks.jobs.execute`, so executors differ only in where it runs.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from abc import ABC, abstractmethod
from typing import Sequence

from feat2gs.registry import Registry

from ..jobs import Job
from ..records import RunRecord


class Executor(ABC):
    name = "?"

    def __init__(self, jobs: int = 1):
        self.jobs = max(1, int(jobs))

    @abstractmethod
    def start(self, jobs: Sequence[Job]) -> None:
        """Submit every job."""

    @abstractmethod
    def poll(self, timeout: float) -> list[RunRecord]:
        """Records of the jobs that finished since the last call (waits up to ``timeout`` s for one)."""

    @abstractmethod
    def unfinished(self) -> int:
        """Jobs submitted and not yet returned by :meth:`poll`."""

    @abstractmethod
    def close(self) -> None:
        """Stop: cancel what has not started, release the workers."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _load(module: str) -> type:
    return importlib.import_module(f"{__name__}.{module}").EXECUTOR


#: executor name -> its class (modules of this package, imported on first use; each defines ``EXECUTOR``)
EXECUTORS: Registry[type] = Registry("executor")
for _m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    EXECUTORS.add(_m.name, functools.partial(_load, _m.name))


def build_executor(name: str, jobs: int = 1) -> Executor:
    return EXECUTORS.entry(name).factory()(jobs=jobs)
