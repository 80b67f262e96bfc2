"""The report as a format-neutral document (headings, paragraphs, tables, figures), built once from a
:class:`~benchmarks.report.model.Report` and rendered by the Markdown, LaTeX and HTML writers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Union

from feat2gs.io import tables

from . import plots
from ..records import RANDOM_PREFIX
from .model import MODE_NAMES, METRIC_LABELS, Report, higher_better, metric_label


@dataclass
class Heading:
    level: int
    text: str
    anchor: str = ""


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    key: str  # identifier (HTML id, file-safe)
    headers: list[str]
    rows: list[list[str]]
    sort: list[list[Optional[float]]] = field(default_factory=list)  # numeric sort keys (None: sort as text)
    caption: str = ""


@dataclass
class Figure:
    name: str  # file name (PNG)
    png: bytes
    caption: str


Block = Union[Heading, Paragraph, Table, Figure]


def fmt(v: Optional[float], digits: int = 2) -> str:
    """feat2gs's number format, with ``–`` for NaN too."""
    return tables.fmt(None if isinstance(v, float) and not math.isfinite(v) else v, digits)


def digits_for(metric: str) -> int:
    return 2 if metric.startswith("psnr") else 4


def _num(v) -> Optional[float]:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def build_document(rep: Report) -> list[Block]:
    d = digits_for(rep.metric)
    blocks: list[Block] = [Heading(1, rep.title),
                           Paragraph(f"{rep.n_runs} complete runs; ranking metric {metric_label(rep.metric)} "
                                     f"({'higher' if higher_better(rep.metric) else 'lower'} is better).")]
    blocks += [Paragraph(n) for n in rep.notes]
    if not rep.modes:
        blocks.append(Paragraph("No complete runs with this metric in the store."))
    for sec in rep.modes:
        mname = MODE_NAMES.get(sec.mode, sec.mode)
        blocks.append(Heading(2, f"{mname} mode ({sec.mode})", f"mode-{sec.mode}"))
        blocks.append(Paragraph(f"{len(sec.scenes)} scenes ({', '.join(sec.scenes)}); seeds "
                                f"{', '.join(map(str, sec.seeds))}."))
        pair = {(c.a, c.b): (c.diff, c.verdict) for c in sec.comparisons}
        pair.update({(c.b, c.a): (-c.diff, {"better": "worse", "worse": "better"}.get(c.verdict, c.verdict))
                     for c in sec.comparisons})
        rows, sort = [], []
        for r in sec.rows:
            twin = pair.get((r.backbone, RANDOM_PREFIX + r.backbone))
            rows.append([fmt(r.rank, 1 if r.rank and r.rank % 1 else 0), r.backbone + (" (control)" if r.control else ""),
                         fmt(r.mean, d), f"[{fmt(r.lo, d)}, {fmt(r.hi, d)}]",
                         f"{fmt(r.rank_lo, 0)}–{fmt(r.rank_hi, 0)}", fmt(r.p_first, 2),
                         "–" if twin is None else f"{twin[1]} {'+' if twin[0] >= 0 else '−'}{fmt(abs(twin[0]), d)}",
                         str(r.n_scenes), str(r.n_runs)])
            sort.append([r.rank, None, r.mean, r.lo, r.rank_lo, r.p_first, None if twin is None else twin[0],
                         r.n_scenes, r.n_runs])
        blocks.append(Table(f"leaderboard-{sec.mode}",
                            ["rank", "backbone", metric_label(rep.metric), "95 % CI", "rank 95 % interval",
                             "P(first)", "vs random twin", "scenes", "runs"], rows, sort,
                            f"Leaderboard, {mname} mode. 'vs random twin': paired difference to random-<backbone> "
                            f"(the same network with random weights) and its verdict."))
        blocks.append(Figure(f"leaderboard_{sec.mode}.png", plots.leaderboard(sec, rep.metric),
                             f"{mname} mode: mean and 95 % CI per backbone; dashed lines: controls."))
        if sec.stability is not None:
            s = sec.stability
            blocks.append(Paragraph(f"Rank stability: Kendall τ between the leaderboard's order and the order in "
                                    f"each bootstrap replicate: mean {s.tau_mean:.3f}, 95 % interval "
                                    f"[{s.tau_lo:.3f}, {s.tau_hi:.3f}] (1 = the order never changes)."))
        # pairwise comparisons
        names = [r.backbone for r in sec.rows]
        by_pair = {(c.a, c.b): c for c in sec.comparisons}
        prow, psort = [], []
        for a in names:
            cells, keys = [a], [None]
            for b in names:
                if a == b:
                    cells.append("·")
                    keys.append(None)
                    continue
                c = by_pair.get((a, b))
                flip = c is None
                c = c or by_pair.get((b, a))
                if c is None:
                    cells.append("–")
                    keys.append(None)
                    continue
                diff = -c.diff if flip else c.diff
                verdict = {"better": "worse", "worse": "better"}.get(c.verdict, c.verdict) if flip else c.verdict
                cells.append(f"{verdict} {'+' if diff >= 0 else '−'}{fmt(abs(diff), d)}")
                keys.append(diff)
            prow.append(cells)
            psort.append(keys)
        if len(names) > 1:
            blocks.append(Heading(3, f"Is the row better than the column? ({mname})"))
            blocks.append(Table(f"pairs-{sec.mode}", ["A \\ B"] + names, prow, psort,
                                f"Paired bootstrap of A − B ({metric_label(rep.metric)}) over shared scenes and "
                                f"seeds: 'better'/'worse' when the 95 % CI of the difference excludes 0, else "
                                f"'tie'."))
            detail = [[c.a, c.b, fmt(c.diff, d), f"[{fmt(c.lo, d)}, {fmt(c.hi, d)}]", fmt(c.p_better, 3), c.verdict,
                       str(c.n_scenes)] for c in sec.comparisons]
            dsort = [[None, None, c.diff, c.lo, c.p_better, None, c.n_scenes] for c in sec.comparisons]
            blocks.append(Table(f"pairs-detail-{sec.mode}", ["A", "B", "A − B", "95 % CI", "P(A better)", "verdict",
                                                             "scenes"], detail, dsort))
        # per dataset
        if sec.datasets:
            blocks.append(Heading(3, f"Per dataset ({mname})"))
            drows, dsort = [], []
            for r in sec.rows:
                per = sec.per_dataset.get(r.backbone, {})
                drows.append([r.backbone] + [fmt(per[ds][0], d) if ds in per else "–" for ds in sec.datasets]
                             + [fmt(r.mean, d)])
                dsort.append([None] + [per[ds][0] if ds in per else None for ds in sec.datasets] + [r.mean])
            blocks.append(Table(f"datasets-{sec.mode}", ["backbone"] + sec.datasets + ["all"], drows, dsort,
                                "Mean over the dataset's scenes of the mean over seeds."))
    # profile
    if rep.profile:
        modes = [s.mode for s in rep.modes]
        blocks.append(Heading(2, "G/T/A profile per backbone", "profile"))
        rows, sort = [], []
        for b, per in sorted(rep.profile.items()):
            rows.append([b] + [f"{fmt(per[m].mean, d)} [{fmt(per[m].lo, d)}, {fmt(per[m].hi, d)}]" if m in per else "–"
                               for m in modes])
            sort.append([None] + [per[m].mean if m in per else None for m in modes])
        blocks.append(Table("profile", ["backbone"] + [f"{m} ({MODE_NAMES[m]})" for m in modes], rows, sort,
                            f"{metric_label(rep.metric)}, mean [95 % CI] per mode."))
        png = plots.profile(rep)
        if png:
            blocks.append(Figure("profile.png", png, "G/T/A profile per backbone; dashed: controls."))
    # 2D vs 3D
    blocks.append(Heading(2, "2D vs 3D metrics", "corr"))
    crow, csort = [], []
    for mode, cors in rep.correlations.items():
        for c in cors:
            crow.append([mode, METRIC_LABELS.get(c.x, c.x), METRIC_LABELS.get(c.y, c.y), str(c.n),
                         f"{c.pearson:+.3f}", f"{c.pearson_p:.2g}", f"{c.spearman:+.3f}", f"{c.spearman_p:.2g}"])
            csort.append([None, None, None, c.n, c.pearson, c.pearson_p, c.spearman, c.spearman_p])
    if crow:
        blocks.append(Table("correlations", ["mode", "2D metric", "3D metric", "runs", "Pearson r", "p", "Spearman ρ",
                                             "p"], crow, csort,
                            "Per-run correlation between novel-view (2D) metrics and 3D metrics (scenes with "
                            "ground-truth geometry)."))
        for mode in rep.correlations:
            png = plots.scatter(rep, mode)
            if png:
                blocks.append(Figure(f"scatter_{mode}.png", png, f"{MODE_NAMES.get(mode, mode)} mode: PSNR vs "
                                                                 f"Dist per run."))
    else:
        blocks.append(Paragraph("No runs with both novel-view and 3D metrics (3D metrics need scenes with "
                                "ground-truth depth)."))
    # compute
    blocks.append(Heading(2, "Compute per run", "compute"))
    rows, sort = [], []
    for r in rep.compute:
        i, x = r.identity, r.result
        rows.append([i.dataset, i.scene, i.backbone, i.mode, str(i.seed), fmt(x.psnr, 2), fmt(x.wall_s, 1),
                     fmt(x.train_s, 1), fmt(x.peak_mem_mb, 0), fmt(x.peak_gpu_mem_mb, 0), x.device or "–",
                     i.run_id])
        sort.append([None, None, None, None, i.seed, _num(x.psnr), _num(x.wall_s), _num(x.train_s),
                     _num(x.peak_mem_mb), _num(x.peak_gpu_mem_mb), None, None])
    blocks.append(Table("compute", ["dataset", "scene", "backbone", "mode", "seed", "PSNR", "wall s", "train s",
                                    "peak MB", "peak GPU MB", "device", "run_id"], rows, sort,
                        "Wall time of the whole job (scene from cache, features, training, evaluation, writing); "
                        "peak resident memory of the worker process during the run."))
    png = plots.compute(rep)
    if png:
        blocks.append(Figure("compute.png", png, "Mean wall time per run and peak memory per backbone and mode."))
    return blocks
