"""The content of a leaderboard report, computed once from the store's records and rendered by the
Markdown, LaTeX and HTML writers: per mode a leaderboard (mean and 95 % bootstrap CI, rank interval),
pairwise paired-bootstrap comparisons, rank stability, per-dataset means; across modes the G/T/A profile
of each backbone; 2D-vs-3D metric correlations; compute per run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from ..records import RunRecord, is_control
from .stats import (Comparison, Correlation, RankStability, bootstrap_draws, correlation, paired_comparison,
                    percentile_ci, point_estimate, rank_stability)

MODE_ORDER = ("G", "T", "A")
MODE_NAMES = {"G": "Geometry", "T": "Texture", "A": "All"}
#: metrics where lower is better
LOWER_BETTER = {"lpips", "accuracy", "completeness", "distance", "wall_s", "train_s", "peak_mem_mb",
                "final_photo_loss"}
METRIC_LABELS = {"psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS", "psnr_full": "PSNR (full image)",
                 "accuracy": "Acc", "completeness": "Comp", "distance": "Dist"}
METRICS_2D = ("psnr", "ssim", "lpips")
METRICS_3D = ("accuracy", "completeness", "distance")


def higher_better(metric: str) -> bool:
    return metric not in LOWER_BETTER


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric) + (" ↑" if higher_better(metric) else " ↓")


@dataclass
class Row:
    backbone: str
    control: bool
    mean: float
    lo: float
    hi: float
    n_scenes: int
    n_runs: int
    rank: Optional[float] = None
    rank_lo: Optional[float] = None
    rank_hi: Optional[float] = None
    p_first: Optional[float] = None


@dataclass
class ModeSection:
    mode: str
    rows: list[Row]  # sorted best first
    comparisons: list[Comparison]  # every ordered pair of non-identical backbones (a listed above b)
    stability: Optional[RankStability]
    datasets: list[str]
    per_dataset: dict[str, dict[str, tuple[float, int]]]  # backbone -> dataset -> (mean, n scenes)
    scenes: list[str]
    seeds: list[int]


@dataclass
class Report:
    title: str
    metric: str
    n_boot: int
    n_runs: int
    modes: list[ModeSection]
    profile: dict[str, dict[str, Row]]  # backbone -> mode -> row
    correlations: dict[str, list[Correlation]]  # mode -> correlations 2D x 3D
    scatter: dict[str, list[tuple[str, float, float]]]  # mode -> (backbone, 2D metric, distance) per run
    compute: list[RunRecord]
    notes: list[str] = field(default_factory=list)


def cube(records: Sequence[RunRecord], metric: str, backbones: Sequence[str], scenes: Sequence[str],
         seeds: Sequence[int]) -> np.ndarray:
    v = np.full((len(backbones), len(scenes), len(seeds)), np.nan)
    bi = {b: i for i, b in enumerate(backbones)}
    si = {s: i for i, s in enumerate(scenes)}
    ki = {k: i for i, k in enumerate(seeds)}
    for r in records:
        x = getattr(r.result, metric)
        if x is not None and np.isfinite(x):
            v[bi[r.identity.backbone], si[scene_key(r)], ki[r.identity.seed]] = float(x)
    return v


def scene_key(r: RunRecord) -> str:
    return f"{r.identity.dataset}/{r.identity.scene}"


def build_report(records: Sequence[RunRecord], metric: str = "psnr", n_boot: int = 2000, seed: int = 0,
                 title: str = "feat2gs leaderboard") -> Report:
    from feat2gs.errors import InputError

    from ..records import result_fields

    if metric not in result_fields():
        raise InputError("--metric", f"unknown metric {metric!r}")
    rng = np.random.default_rng(seed)
    hb = higher_better(metric)
    recs = [r for r in records if r.status == "complete"]
    modes = [m for m in MODE_ORDER if any(r.identity.mode == m for r in recs)]
    sections, profile = [], {}
    correlations, scatter = {}, {}
    for mode in modes:
        mr = [r for r in recs if r.identity.mode == mode and getattr(r.result, metric) is not None]
        if not mr:
            continue
        backbones = sorted({r.identity.backbone for r in mr})
        scenes = sorted({scene_key(r) for r in mr})
        seeds = sorted({r.identity.seed for r in mr})
        v = cube(mr, metric, backbones, scenes, seeds)
        est = point_estimate(v)
        draws = bootstrap_draws(v, n_boot, rng)
        lo, hi = percentile_ci(draws)
        stab = rank_stability(est, draws, hb)
        order = sorted(range(len(backbones)), key=lambda i: (-est[i] if hb else est[i]))
        from .stats import ranks

        point_rank = ranks(est[:, None], hb)[:, 0]
        rows = []
        for i in order:
            n_sc = int(np.sum(~np.all(np.isnan(v[i]), axis=-1)))
            rows.append(Row(backbones[i], is_control(backbones[i]), float(est[i]), float(lo[i]), float(hi[i]), n_sc,
                            int(np.sum(~np.isnan(v[i]))), float(point_rank[i]),
                            None if stab is None else float(stab.rank_lo[i]),
                            None if stab is None else float(stab.rank_hi[i]),
                            None if stab is None else float(stab.p_first[i])))
            profile.setdefault(backbones[i], {})[mode] = rows[-1]
        comps = []
        for x in range(len(order)):
            for y in range(x + 1, len(order)):
                i, j = order[x], order[y]
                c = paired_comparison(v[i], v[j], backbones[i], backbones[j], hb, n_boot, rng)
                if c is not None:
                    comps.append(c)
        datasets = sorted({r.identity.dataset for r in mr})
        per_ds: dict[str, dict[str, tuple[float, int]]] = {}
        for i, b in enumerate(backbones):
            for ds in datasets:
                cols = [k for k, s in enumerate(scenes) if s.split("/", 1)[0] == ds]
                sub = v[i][cols]
                n = int(np.sum(~np.all(np.isnan(sub), axis=-1)))
                if n:
                    per_ds.setdefault(b, {})[ds] = (float(point_estimate(sub[None])[0]), n)
        sections.append(ModeSection(mode, rows, comps, stab, datasets, per_ds, scenes, seeds))
        # 2D vs 3D: per run
        allm = [r for r in recs if r.identity.mode == mode]
        cors = []
        for m2 in METRICS_2D:
            for m3 in METRICS_3D:
                c = correlation([getattr(r.result, m2) if getattr(r.result, m2) is not None else np.nan for r in allm],
                                [getattr(r.result, m3) if getattr(r.result, m3) is not None else np.nan for r in allm],
                                m2, m3)
                if c is not None:
                    cors.append(c)
        correlations[mode] = cors
        scatter[mode] = [(r.identity.backbone, r.result.psnr, r.result.distance) for r in allm
                         if r.result.psnr is not None and r.result.distance is not None]
    compute = sorted(recs, key=lambda r: (r.identity.mode, r.identity.backbone, scene_key(r), r.identity.seed))
    notes = [f"{metric_label(metric)}: per backbone the mean over scenes of the mean over seeds; 95 % CI from "
             f"{n_boot} bootstrap replicates resampling scenes and, within each scene, seeds (percentile "
             "intervals). Comparisons: paired bootstrap over the scenes and seeds both backbones have; "
             "'tie' when the 95 % CI of the difference contains 0.",
             "Controls (iuvrgb: pixels and coordinates, no network; noise: i.i.d. codes; random-<net>: the "
             "network with random weights) are marked and drawn as reference lines."]
    others = [r for r in records if r.status != "complete"]
    if others:
        by = {}
        for r in others:
            by[r.status] = by.get(r.status, 0) + 1
        notes.append(f"Not counted: {', '.join(f'{v} {k}' for k, v in sorted(by.items()))} run(s) "
                     f"(`feat2gs store show` lists them with their errors).")
    return Report(title, metric, n_boot, len(recs), sections, profile, correlations, scatter, compute, notes)
