"""The shared real scenes x {iuvrgb, random-vit} x {G, T, A}: runs the sweep and writes the measured table
into benchmarks/results/shared_scenes.md and into the README (between the shared-scenes markers).

    python benchmarks/shared_scenes.py [--data ../shared/data] [key=value overrides ...]

Numbers in the README come only from this script's output: nothing is typed by hand.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from feat2gs.io.tables import markdown_table
from feat2gs.sweep import run_sweep

from benchmarks.results_io import publish

REPO = Path(__file__).resolve().parents[1]
SCENES = ("llff/fern", "middlebury/templeSparseRing", "dtu/scan37")


def table(rows) -> str:
    head = ["scene", "backbone", "mode", "PSNR ↑", "SSIM ↑", "mean-colour PSNR", "train+eval s"]
    return markdown_table(head, [[r["scene"]["scene"], r["backbone"], r["mode"], f"{r['nvs']['psnr']:.2f}",
                                  f"{r['nvs']['ssim']:.4f}", f"{r['nvs']['mean_color_psnr']:.2f}",
                                  f"{r['time_s']:.0f}"] for r in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--data", default=os.environ.get("FEAT2GS_TEST_DATA", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--backbones", default="iuvrgb,random-vit")
    ap.add_argument("--modes", default="GTA")
    ap.add_argument("--no-readme", action="store_true", help="do not update README.md")
    args = ap.parse_args()
    scenes = [str(Path(args.data) / s) for s in SCENES]
    res = run_sweep("Shared real scenes", scenes, args.backbones.split(","), list(args.modes),
                    ["output.root=runs/benchmarks", *args.overrides], preset="shared", name="shared_scenes")
    first = res.rows[0]["scene"]
    summary = (f"{table(res.rows)}\n\nPreset `shared` ({first['resolution'][0]} px long side, 3 train views, "
               f"`mvs` init, one Gaussian per 4x4 block, 500 warm-up + 1500 photometric steps, 100 test-pose "
               f"steps); PSNR/SSIM over valid test pixels after test-pose refinement. Produced by "
               f"`python benchmarks/shared_scenes.py`.")
    data = [{"scene": r["scene"]["scene"], **{k: r[k] for k in ("backbone", "mode", "nvs", "time_s")}}
            for r in res.rows]
    publish("shared-scenes", summary, data, readme=not args.no_readme)
    print(summary)


if __name__ == "__main__":
    main()
