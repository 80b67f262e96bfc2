"""The demo scene with one Gaussian per pixel: iuvrgb in Texture mode on the GT-depth (`dataset`) init, the
check that a dense initialisation renders the scene sharply (README block `demo-dense`, render grid beside the
result files).

    python benchmarks/demo_dense.py [key=value overrides ...]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from feat2gs.sweep import run_sweep

from benchmarks.results_io import REPO, publish


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--no-readme", action="store_true")
    args = ap.parse_args()
    res = run_sweep("Demo scene, one Gaussian per pixel", [None], ["iuvrgb"], ["T"],
                    ["output.root=runs/benchmarks", "init.block=1", *args.overrides], preset="demo",
                    name="demo_dense")
    r = res.rows[0]
    s, info = r["summary"], r["scene"]
    grid = res.path / f"renders_{info['scene']}.png"
    shutil.copy(grid, REPO / "benchmarks" / "results" / "demo-dense.png")
    md = (f"iuvrgb, Texture mode, `dataset` init, {s['gaussians']} Gaussians (one per pixel of three "
          f"{info['resolution'][0]}x{info['resolution'][1]} train views), demo schedule: **PSNR {s['psnr']:.2f} dB** "
          f"(full image {s['psnr_full']:.2f}, before test-pose refinement {s['psnr_no_pose_refine']:.2f}; "
          f"mean-colour image {s['mean_colour_psnr']:.2f}), SSIM {s['ssim']:.4f}, "
          f"{r['time_s']:.0f} s on this machine. Renders (top: ground truth): "
          f"`benchmarks/results/demo-dense.png`. Produced by `python benchmarks/demo_dense.py`.")
    publish("demo-dense", md, {k: s[k] for k in ("psnr", "psnr_full", "psnr_no_pose_refine", "ssim",
                                                "mean_colour_psnr", "gaussians")} | {"time_s": r["time_s"]},
            readme=not args.no_readme)
    print(md)


if __name__ == "__main__":
    main()
