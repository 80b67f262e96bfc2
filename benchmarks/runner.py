"""The sweep runner: a suite's job plan through an executor into the results store, resumable.

* A run whose ``run_id`` is complete in the store is skipped.
* A run whose folder is complete on disk (every file, ``job.json`` last) but missing from the store -- the
  sweep died between the two -- is indexed from its folder, not rerun.
* Every other run is (re)started: a crashed attempt's folder is removed first.
* The store is written only by this process, one transaction per finished run, after all of the run's
  files exist; a failed run is recorded with its error and the sweep goes on. So a SIGKILL loses at most
  the runs in flight and never leaves a half-result counted; the next sweep finishes the rest.

Run folders: ``<runs_root>/<run_id>_<scene>_<backbone>_<mode>_s<seed>`` (``runs_root`` defaults to
``<store>-runs/`` beside the store). Progress: a live table (runs done / failed / skipped, ETA, the stage of
each run in flight) on a terminal, one line per finished run otherwise.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from feat2gs.errors import InputError

from .executors import build_executor
from .jobs import Job, read_stage
from .records import COMPLETE, RunRecord, record_from_run_dir
from .store import ResultStore
from .suite import Suite


@dataclass
class SweepSummary:
    total: int = 0
    skipped: int = 0  # complete in the store before this sweep
    recovered: int = 0  # complete on disk, indexed without rerunning
    complete: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (label, error)


def run_folder_name(job_identity) -> str:
    i = job_identity
    name = f"{i.run_id}_{i.scene}_{i.backbone}_{i.mode}_s{i.seed}"
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name)


def default_runs_root(store_path: Path) -> Path:
    return store_path.with_name(store_path.stem + "-runs")


@contextlib.contextmanager
def sweep_lock(store_path: Path):
    """One sweep per store at a time: an exclusive ``flock`` on ``<store>.lock`` (released by the kernel when
    the sweep ends, however it ends). A second sweep gets one error naming the store."""
    import fcntl

    store_path.parent.mkdir(parents=True, exist_ok=True)
    lock = store_path.with_name(store_path.name + ".lock")
    with open(lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "?"
            raise InputError(str(store_path), f"another sweep is writing this store (pid {holder}); wait for it "
                                              "or give another --store") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        yield


class Progress:
    """Counts, ETA and per-run stages: a rich live table on a terminal, log lines otherwise."""

    def __init__(self, total: int, to_run: int, live: Optional[bool] = None, log: Callable = print):
        self.total, self.to_run, self.log = total, to_run, log
        self.done = self.failed = self.skipped = 0
        self.t0 = time.perf_counter()
        self.stages: dict[str, tuple[str, str]] = {}  # run_id -> (label, stage)
        self._live = None
        if live is None:
            live = sys.stderr.isatty()
        if live:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self._render(), console=Console(stderr=True), refresh_per_second=2, transient=False)
            self._live.start()

    def eta(self) -> Optional[float]:
        finished = self.done + self.failed
        if finished == 0:
            return None
        rate = (time.perf_counter() - self.t0) / finished
        return rate * (self.to_run - finished)

    def headline(self) -> str:
        eta = self.eta()
        eta_s = "?" if eta is None else time.strftime("%H:%M:%S", time.gmtime(eta))
        return (f"runs {self.done + self.failed + self.skipped}/{self.total}: {self.done} done, {self.failed} failed, "
                f"{self.skipped} skipped; elapsed {time.strftime('%H:%M:%S', time.gmtime(time.perf_counter() - self.t0))}"
                f", ETA {eta_s}")

    def _render(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        t = Table(show_edge=False)
        t.add_column("run in flight")
        t.add_column("stage")
        for label, stage in list(self.stages.values())[:12]:
            t.add_row(label, stage)
        return Group(Text(self.headline(), style="bold"), t) if self.stages else Text(self.headline(), style="bold")

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def finished(self, rec: RunRecord, recovered: bool = False) -> None:
        self.stages.pop(rec.run_id, None)
        if recovered:
            self.skipped += 1
        elif rec.status == COMPLETE:
            self.done += 1
        else:
            self.failed += 1
        if rec.status == COMPLETE:
            extra = "" if rec.result.psnr is None else f"PSNR {rec.result.psnr:.2f}"
        else:
            lines = (rec.result.error or "").strip().splitlines()
            extra = lines[-1][:200] if lines else ""
        line = f"{rec.status:>8s}{' (indexed from its folder)' if recovered else ''}  {rec.identity.label}  {extra}"
        if self._live is not None:
            self._live.console.print(line)
        else:
            self.log(line + f"  [{self.headline()}]")
        self.refresh()

    def close(self) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.stop()


def run_sweep(suite: Suite, store_path: Path, executor: str = "local", jobs: Optional[int] = None,
              runs_root: Optional[Path] = None, live: Optional[bool] = None, log: Callable = print,
              poll_s: float = 0.5) -> SweepSummary:
    """Run ``suite`` into the store at ``store_path`` (see the module docstring)."""
    store_path = Path(store_path)
    runs_root = Path(runs_root) if runs_root else default_runs_root(store_path)
    summary = SweepSummary(total=len(suite.jobs))
    t0 = time.perf_counter()
    with sweep_lock(store_path), ResultStore(store_path) as store:
        statuses = store.statuses()
        todo: list[Job] = []
        recovered: list[RunRecord] = []
        for spec in suite.jobs:
            if statuses.get(spec.run_id) == COMPLETE:
                summary.skipped += 1
                continue
            run_dir = runs_root / run_folder_name(spec.identity)
            if run_dir.is_dir():
                try:
                    rec = record_from_run_dir(run_dir, preset=spec.preset, dataset=spec.identity.dataset,
                                              require_job=True)
                except Exception:
                    rec = None
                if rec is not None and rec.status == COMPLETE and rec.run_id == spec.run_id:
                    rec.result.suite = suite.name
                    recovered.append(rec)
                    continue
            todo.append(Job(spec.identity, spec.overrides, spec.preset, str(run_dir.resolve()), suite.name))
        progress_dir = runs_root / ".progress"
        if progress_dir.exists():
            shutil.rmtree(progress_dir, ignore_errors=True)
        progress_dir.mkdir(parents=True, exist_ok=True)
        todo = [Job(j.identity, j.overrides, j.preset, j.run_dir, j.suite, str(progress_dir)) for j in todo]
        progress = Progress(summary.total, len(todo), live=live, log=log)
        progress.skipped = summary.skipped
        try:
            for rec in recovered:
                store.put(rec)
                summary.recovered += 1
                progress.finished(rec, recovered=True)
            if todo:
                labels = {j.run_id: j.identity.label for j in todo}
                with build_executor(executor, jobs=jobs or 0) as ex:
                    ex.start(todo)
                    started: set[str] = set()
                    finished: set[str] = set()
                    while ex.unfinished():
                        for rec in ex.poll(poll_s):
                            store.put(rec)
                            finished.add(rec.run_id)
                            if rec.status == COMPLETE:
                                summary.complete += 1
                            else:
                                summary.failed += 1
                                summary.failures.append((rec.identity.label, rec.result.error or ""))
                            progress.finished(rec)
                        for job in todo:  # the stage of each run in flight
                            rid = job.run_id
                            if rid in finished:
                                continue
                            stage = read_stage(progress_dir, rid)
                            if not stage or stage == "done":
                                continue
                            if rid not in started:
                                started.add(rid)
                                store.mark_running(job.identity, job.run_dir, suite.name)
                            progress.stages[rid] = (labels[rid], stage)
                        progress.refresh()
        finally:
            progress.close()
            shutil.rmtree(progress_dir, ignore_errors=True)
    summary.seconds = time.perf_counter() - t0
    return summary
