"""The README's leaderboard block from a results store (by default the smoke suite's):

    feat2gs sweep smoke --store runs/smoke.sqlite
    python benchmarks/leaderboard_readme.py --store runs/smoke.sqlite [--no-readme]

writes benchmarks/results/leaderboard.{md,json} and the README block between the leaderboard markers: per
mode the leaderboard table (mean, 95 % bootstrap CI, rank interval) and the G/T/A profile, exactly as
`feat2gs report` computes them. Numbers in the README come only from this script's output.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from benchmarks.report.document import Heading, Table, build_document
from benchmarks.report.model import build_report
from benchmarks.report.writers import markdown
from benchmarks.results_io import publish
from benchmarks.store import ResultStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default="runs/smoke.sqlite")
    ap.add_argument("--metric", default="psnr")
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--no-readme", action="store_true", help="do not update README.md")
    args = ap.parse_args()
    with ResultStore(args.store, create=False) as st:
        records = st.records()
    rep = build_report(records, metric=args.metric, n_boot=args.bootstrap)
    keep = []
    for b in build_document(rep):
        if isinstance(b, Heading) and b.level == 2 and b.anchor.startswith(("mode-", "profile")):
            keep.append(Heading(4, b.text))
        elif isinstance(b, Table) and b.key.startswith(("leaderboard-", "profile")):
            keep.append(b)
    runs = sorted({(r.identity.dataset, r.identity.scene) for r in records})
    text = markdown(keep) + (
        f"\n{rep.n_runs} complete runs of `{Path(args.store).name}` ({len(runs)} scenes: "
        f"{', '.join(s for _, s in runs)}). {rep.notes[0]} Produced by `python benchmarks/leaderboard_readme.py`; "
        f"`feat2gs report` writes the full report (pairwise tests, per-dataset tables, rank stability, 2D-vs-3D "
        f"correlations, compute).")
    data = {"metric": rep.metric, "modes": [{"mode": s.mode, "rows": [asdict(r) for r in s.rows]} for s in rep.modes]}
    publish("leaderboard", text.strip(), data, readme=not args.no_readme)
    print(text)


if __name__ == "__main__":
    main()
