"""Leaderboard reports of a results store: ``report.md``, ``report.tex`` and one self-contained
``report.html`` (plus ``plots/*.png``), all rendered from one document built from the store's records.

:mod:`.stats` (bootstrap, paired comparisons, rank stability, correlations) -> :mod:`.model` (what the
report says) -> :mod:`.document` (headings, tables, figures from :mod:`.plots`) -> :mod:`.writers`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..records import RunRecord


def write_report(records: Sequence[RunRecord], out: Path, metric: str = "psnr", n_boot: int = 2000, seed: int = 0,
                 title: str = "feat2gs leaderboard") -> list[Path]:
    """Write the report of ``records`` (complete ones count) into ``out``; returns the files written."""
    from .document import build_document
    from .model import build_report
    from .writers import write_all

    rep = build_report(records, metric=metric, n_boot=n_boot, seed=seed, title=title)
    return write_all(build_document(rep), Path(out))
