"""Pose-free probes on the shared real scenes: ``init=colmap`` (weight-free; the dataset poses are read only to
score the recovered cameras), writes benchmarks/results/posefree-scenes.{md,json} and the README block between
the posefree-scenes markers.

    python benchmarks/posefree_scenes.py [--scenes llff/fern] [--backbones iuvrgb] [--modes T] [key=value ...]

Reported per run: PSNR over the valid test pixels after test-pose refinement and the mean-colour image's PSNR
(the margin is what the probe adds), the train cameras' ATE after sim(3) relative to the camera extent and their
RPE rotation, and the registered test cameras' ATE (train + test, dataset frame).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from feat2gs.sweep import run_sweep

from benchmarks.results_io import publish

REPO = Path(__file__).resolve().parents[1]


def table(rows) -> str:
    head = ("| scene | init | backbone | mode | PSNR ↑ | mean-colour PSNR | margin dB | train ATE (% extent) | "
            "train RPE rot ° | train+test ATE (% extent) | train+eval s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        n, p = r["nvs"], r["poses"] or {}
        tr, tt = p.get("train") or {}, p.get("train_and_test") or {}
        pct = lambda m: "–" if m.get("ate_rel") is None else f"{100 * m['ate_rel']:.2f}"  # noqa: E731
        lines.append(f"| {r['scene']} | {r['init']} | {r['backbone']} | {r['mode']} | {n['psnr']:.2f} | "
                     f"{n['mean_color_psnr']:.2f} | {n['psnr'] - n['mean_color_psnr']:.2f} | {pct(tr)} | "
                     f"{tr.get('rpe_rot_deg', float('nan')):.2f} | {pct(tt)} | {r['time_s']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--data", default=os.environ.get("FEAT2GS_TEST_DATA", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--scenes", default="llff/fern")
    ap.add_argument("--init", default="colmap")
    ap.add_argument("--backbones", default="iuvrgb")
    ap.add_argument("--modes", default="T")
    ap.add_argument("--no-readme", action="store_true", help="do not update README.md")
    args = ap.parse_args()
    scenes = [str(Path(args.data) / s) for s in args.scenes.split(",")]
    res = run_sweep("Pose-free scenes", scenes, args.backbones.split(","), list(args.modes),
                    ["output.root=runs/benchmarks", f"init.name={args.init}", *args.overrides], preset="shared",
                    name="posefree_scenes")
    rows = [{"scene": r["scene"]["scene"], "init": r["scene"]["init"],
             "poses": r.get("poses") or r["scene"].get("poses"),
             **{k: r[k] for k in ("backbone", "mode", "nvs", "time_s")}} for r in res.rows]
    first = res.rows[0]["scene"]
    summary = (f"{table(rows)}\n\nPreset `shared` ({first['resolution'][0]} px long side, 3 train views, one Gaussian "
               f"per 4x4 block, 500 warm-up + 1500 photometric steps, 100 test-pose steps) with `init={args.init}`: "
               f"cameras recovered from the train images, test views registered by a joint reconstruction and a "
               f"sim(3); the dataset poses are read only for the ATE/RPE columns. Produced by "
               f"`python benchmarks/posefree_scenes.py`.")
    publish("posefree-scenes", summary, rows, readme=not args.no_readme)
    print(summary)


if __name__ == "__main__":
    main()
