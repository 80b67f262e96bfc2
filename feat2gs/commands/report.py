"""``feat2gs report --store PATH --out DIR``: leaderboards with bootstrap confidence intervals as Markdown,
LaTeX and one self-contained HTML page (see ``benchmarks/report/``)."""

from __future__ import annotations

from pathlib import Path


def cmd_report(args) -> int:
    from benchmarks.report import write_report
    from benchmarks.store import ResultStore

    with ResultStore(args.store, create=False) as store:
        records = store.records(status=None)  # failed / running ones are counted, not ranked
    out = write_report(records, Path(args.out), metric=args.metric, n_boot=args.bootstrap, seed=args.seed,
                       title=args.title or f"feat2gs leaderboard ({Path(args.store).name})")
    for p in out:
        print(p)
    return 0


def register(sub) -> None:
    help_ = "leaderboard report of a results store: Markdown, LaTeX and a self-contained HTML page"
    p = sub.add_parser("report", help=help_, description=help_)
    p.add_argument("--store", required=True, help="results store (SQLite) written by `feat2gs sweep`")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--metric", default="psnr", help="ranking metric (psnr, ssim, lpips, ...); default psnr")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--title", default=None)
    p.set_defaults(func=cmd_report)
