"""``feat2gs sweep SUITE [--executor local|ray] [--store PATH] [--jobs N]``: run a suite into a results store,
resumably (see ``benchmarks/runner.py``)."""

from __future__ import annotations

import sys
from pathlib import Path


def cmd_sweep(args) -> int:
    from benchmarks.executors import EXECUTORS
    from benchmarks.runner import run_sweep
    from benchmarks.suite import load_suite

    EXECUTORS.entry(args.executor)  # unknown executor: one error before anything runs
    suite = load_suite(args.suite)
    store = Path(args.store) if args.store else Path("runs") / f"{suite.name}.sqlite"
    print(f"suite {suite.name} ({suite.path}): {len(suite.jobs)} runs = {len(suite.scenes)} scenes x "
          f"{len(suite.backbones)} backbones x {len(suite.modes)} modes x {len(suite.seeds)} seeds; store {store}; "
          f"executor {args.executor}", flush=True)
    s = run_sweep(suite, store, executor=args.executor, jobs=args.jobs,
                  runs_root=Path(args.runs_dir) if args.runs_dir else None,
                  live=False if args.no_live else None)
    print(f"{s.complete} complete, {s.failed} failed, {s.skipped} already complete, {s.recovered} indexed from "
          f"their folders; {s.seconds:.0f} s; store {store}")
    for label, err in s.failures:
        last = (err.strip().splitlines() or [""])[-1]
        print(f"  failed: {label}: {last}", file=sys.stderr)
    return 1 if s.failed else 0


def register(sub) -> None:
    help_ = "run a benchmark suite (scenes x backbones x modes x seeds) into a results store, resumably"
    p = sub.add_parser("sweep", help=help_, description=help_)
    p.add_argument("suite", help="a suite name (benchmarks/suites/NAME.yaml: smoke, paper) or a suite YAML path")
    p.add_argument("--executor", default="local", help="local (worker processes) or ray (Ray tasks)")
    p.add_argument("--store", default=None, help="results store (SQLite); default runs/<suite>.sqlite")
    p.add_argument("--jobs", type=int, default=None,
                   help="runs at a time (default: one per visible GPU, else 1)")
    p.add_argument("--runs-dir", default=None, help="run folders (default: <store>-runs/ beside the store)")
    p.add_argument("--no-live", action="store_true", help="plain log lines instead of the live progress table")
    p.set_defaults(func=cmd_sweep)
