"""The shared real scenes x {iuvrgb, noise, random-vit} x {G, T, A}: runs the sweep and writes the measured table
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


ROW_FIELDS = ("scene", "backbone", "mode", "seed", "gaussians", "train_coverage", "eval_coverage", "eval_mask_sha256",
              "psnr", "psnr_full", "psnr_no_pose_refine", "ssim", "ssim_full", "lpips", "mean_colour_psnr",
              "mean_colour_psnr_full", "warnings")


def table(rows) -> str:
    head = ["scene", "backbone", "mode", "Gaussians", "train cov.", "eval cov.", "PSNR ↑", "PSNR full",
            "PSNR before pose refine", "SSIM ↑", "mean-colour PSNR", "s"]
    return markdown_table(head, [[r["scene"], r["backbone"], r["mode"], str(r["gaussians"]),
                                  f"{r['train_coverage']:.2f}", f"{r['eval_coverage']:.2f}", f"{r['psnr']:.2f}",
                                  f"{r['psnr_full']:.2f}", f"{r['psnr_no_pose_refine']:.2f}", f"{r['ssim']:.4f}",
                                  f"{r['mean_colour_psnr']:.2f}", f"{r['time_s']:.0f}"] for r in rows])


def split_notes(rows) -> str:
    seen, out = set(), []
    for r in rows:
        if r["scene"] in seen:
            continue
        seen.add(r["scene"])
        out.append(f"{r['scene']}: {r['split']} (eval mask {r['eval_mask_method']}, sha256 "
                   f"{r['eval_mask_sha256'][:12]}…)")
    return "; ".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--data", default=os.environ.get("FEAT2GS_TEST_DATA", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--backbones", default="iuvrgb,noise,random-vit")
    ap.add_argument("--modes", default="GTA")
    ap.add_argument("--no-readme", action="store_true", help="do not update README.md")
    args = ap.parse_args()
    scenes = [str(Path(args.data) / s) for s in SCENES]
    res = run_sweep("Shared real scenes", scenes, args.backbones.split(","), list(args.modes),
                    ["output.root=runs/benchmarks", *args.overrides], preset="shared", name="shared_scenes")
    data = [{**{k: r["summary"].get(k) for k in ROW_FIELDS}, "split": r["scene"]["split"],
             "eval_mask_method": r["scene"]["eval_mask"]["method"], "time_s": r["time_s"]} for r in res.rows]
    first = res.rows[0]
    summary = (f"{table(data)}\n\nPreset `shared` ({first['scene']['resolution'][0]}x{first['scene']['resolution'][1]}"
               f" working resolution for fern, dense `mvs` init (semi-global matching + push-pull fill, every "
               f"pixel of the Gaussian grid), one Gaussian per {first['scene']['grid_stride']}x"
               f"{first['scene']['grid_stride']} block, backbones at 512 px long side, the schedule in "
               f"`feat2gs/config/shared.yaml`). PSNR/SSIM over the scene's evaluation mask (the same pixels for "
               f"every run of a scene) after test-pose refinement; \"PSNR full\" over whole images; \"PSNR before "
               f"pose refine\" over the mask at the dataset pose. Splits: {split_notes(data)}. Produced by "
               f"`python benchmarks/shared_scenes.py`.")
    publish("shared-scenes", summary, data, readme=not args.no_readme)
    print(summary)


if __name__ == "__main__":
    main()
