"""Run the perf scripts of this folder and publish their numbers as the README's performance tables
(benchmarks/results/performance.md + .json and the README block between the performance markers).

    python benchmarks/perf/summary.py [--full-extract] [--no-readme]

Each script runs in its own process (so OpenMP settings apply from the start) and prints JSON lines; this
script only formats them. Run it on an otherwise idle machine: the numbers are wall-clock times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from benchmarks.results_io import publish
from feat2gs.io.tables import markdown_table as table

HERE = Path(__file__).resolve().parent


def run(script: str, *args: str) -> list[dict]:
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    out = subprocess.run([sys.executable, str(HERE / script), *args], capture_output=True, text=True, env=env,
                         check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def render_table(rows: list[dict]) -> str:
    ref = {(r["gaussians"], r["width"], r["height"]): r for r in rows if r.get("backend") == "reference"}
    out = []
    for r in rows:
        if r.get("backend") != "cpu":
            continue
        key = (r["gaussians"], r["width"], r["height"])
        rr = ref.get(key, {})
        ref_sps = rr.get("steps_per_s")
        out.append([f"{r['gaussians'] // 1000}k", f"{r['width']}x{r['height']}", f"{r['steps_per_s']:.1f}",
                    f"{r['ms_per_step']:.0f}", "skipped" if ref_sps is None else f"{ref_sps:.3f}",
                    "–" if ref_sps is None else f"{r['steps_per_s'] / ref_sps:.0f}x"])
    return table(["Gaussians", "image", "CPU backend steps/s", "ms/step", "pure-torch reference steps/s",
                  "speed-up"], out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full-extract", action="store_true", help="also time full-size random-weight backbones")
    ap.add_argument("--no-readme", action="store_true")
    args = ap.parse_args()
    render = run("render_cpu.py", "--steps", "10")
    steps = run("train_step.py")
    extract = run("extract.py", *(["--full"] if args.full_extract else []))
    roe = run("roe.py")
    host = f"{platform.machine()}, {os.cpu_count()} cores, torch threads {render[0].get('threads', '?')}"
    parts = [
        f"Measured by `python benchmarks/perf/summary.py` on {host} (CPU only; wall-clock).", "",
        "**Renderer, forward + backward per step** (`benchmarks/perf/render_cpu.py`; one Gaussian per pixel of "
        "4 views of a surface, all parameters and the camera pose get gradients):", "", render_table(render), "",
        "**Training steps on the demo scene** (`benchmarks/perf/train_step.py`; readout heads + render + loss + "
        "backward; warm-up = heads only):", "",
        table(["backbone", "mode", "Gaussians", "image", "photometric ms", "warm-up ms"],
              [[r["backbone"], r["mode"], r["gaussians"], f"{r['width']}x{r['height']}", r["photometric_ms"],
                r["warmup_ms"]] for r in steps]), "",
        "**Feature extraction per view** (`benchmarks/perf/extract.py`; random weights):", "",
        table(["backbone", "config", "image", "model input", "ms/view"],
              [[r["backbone"], r["config"], "x".join(map(str, r["image"][::-1])),
                "x".join(map(str, r.get("input", [])[::-1])),
                f"{1000 * r['per_view_s']:.1f}" if "per_view_s" in r else r.get("error", "error")]
               for r in extract]), "",
        "**ROE alignment, batch 32** (`benchmarks/perf/roe.py`):", "",
        table(["case", "n per item", "batched s", "per-item loop s", "speed-up vs loop", "naive s",
               "speed-up vs naive"],
              [[r["case"], r["n"], r["batched_s"], r["loop_s"], r["speedup_vs_loop"], r["naive_s"],
                r["speedup_vs_naive"]] for r in roe]),
    ]
    publish("performance", "\n".join(parts),
            {"render": render, "train_step": steps, "extract": extract, "roe": roe}, readme=not args.no_readme)
    print("\n".join(parts))


if __name__ == "__main__":
    main()
