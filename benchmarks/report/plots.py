"""The report's figures (matplotlib, Agg), each returned as PNG bytes."""

from __future__ import annotations

import io
from typing import Optional

import numpy as np

from .model import MODE_NAMES, MODE_ORDER, ModeSection, Report, metric_label


def _fig(w: float, h: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(w, h), dpi=100)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def leaderboard(section: ModeSection, metric: str) -> bytes:
    """Mean and 95 % CI per backbone (best on top); controls grey, and their means as reference lines."""
    rows = section.rows
    fig, ax = _fig(7, 0.45 * len(rows) + 1.4)
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows):
        colour = "0.45" if r.control else "C0"
        ax.errorbar(r.mean, yi, xerr=[[r.mean - r.lo], [r.hi - r.mean]], fmt="s" if r.control else "o",
                    color=colour, capsize=3)
        if r.control:
            ax.axvline(r.mean, color="0.6", ls="--", lw=0.8, zorder=0)
            ax.annotate(r.backbone, (r.mean, 1.0), xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                        color="0.4", va="top", ha="right")
    ax.set_yticks(y, [r.backbone + (" (control)" if r.control else "") for r in rows])
    ax.set_xlabel(metric_label(metric))
    ax.set_title(f"{MODE_NAMES.get(section.mode, section.mode)} mode: mean and 95 % bootstrap CI")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def profile(report: Report) -> Optional[bytes]:
    """The G/T/A profile of every backbone (controls dashed)."""
    modes = [m for m in MODE_ORDER if any(s.mode == m for s in report.modes)]
    if not report.profile or not modes:
        return None
    fig, ax = _fig(7, 4.2)
    x = np.arange(len(modes))
    for i, (b, per) in enumerate(sorted(report.profile.items())):
        means = np.array([per[m].mean if m in per else np.nan for m in modes])
        lo = np.array([per[m].mean - per[m].lo if m in per else np.nan for m in modes])
        hi = np.array([per[m].hi - per[m].mean if m in per else np.nan for m in modes])
        control = any(r.control for r in per.values())
        ax.errorbar(x + (i - len(report.profile) / 2) * 0.03, means, yerr=[lo, hi], marker="o", capsize=2,
                    ls="--" if control else "-", label=b)
    ax.set_xticks(x, [f"{m} ({MODE_NAMES[m]})" for m in modes])
    ax.set_ylabel(metric_label(report.metric))
    ax.set_title("G/T/A profile per backbone (95 % CI)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return _png(fig)


def scatter(report: Report, mode: str) -> Optional[bytes]:
    pts = report.scatter.get(mode) or []
    if len(pts) < 2:
        return None
    fig, ax = _fig(6, 4.2)
    for b in sorted({p[0] for p in pts}):
        xs = [p[1] for p in pts if p[0] == b]
        ys = [p[2] for p in pts if p[0] == b]
        ax.scatter(xs, ys, label=b, s=18)
    ax.set_xlabel(metric_label("psnr") + " (novel views)")
    ax.set_ylabel(metric_label("distance") + " (3D, Gaussian means vs GT points)")
    ax.set_title(f"{MODE_NAMES.get(mode, mode)} mode: 2D vs 3D per run")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _png(fig)


def compute(report: Report) -> Optional[bytes]:
    """Mean wall time per run and peak memory per backbone and mode."""
    recs = [r for r in report.compute if r.result.wall_s is not None]
    if not recs:
        return None
    keys = sorted({(r.identity.backbone, r.identity.mode) for r in recs},
                  key=lambda k: (k[0], MODE_ORDER.index(k[1]) if k[1] in MODE_ORDER else 9))
    wall = [np.mean([r.result.wall_s for r in recs if (r.identity.backbone, r.identity.mode) == k]) for k in keys]
    mem = [np.nanmax([r.result.peak_mem_mb if r.result.peak_mem_mb is not None else np.nan
                      for r in recs if (r.identity.backbone, r.identity.mode) == k] + [np.nan]) for k in keys]
    fig, ax = _fig(7, 0.3 * len(keys) + 1.5)
    y = np.arange(len(keys))[::-1]
    ax.barh(y, wall, color="C1")
    ax.set_yticks(y, [f"{b} {m}" for b, m in keys])
    ax.set_xlabel("mean wall time per run (s)")
    for yi, w, m in zip(y, wall, mem):
        if np.isfinite(m):
            ax.annotate(f" {m:.0f} MB peak", (w, yi), va="center", fontsize=7)
    ax.set_title("Compute per run")
    return _png(fig)
