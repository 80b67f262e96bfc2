"""Tables: the one Markdown-table writer (reports, benchmark results, README blocks) and a plain-text
layout of the same rows for the terminal."""

from __future__ import annotations

from typing import Any, Sequence


def fmt(value: Any, digits: int = 2) -> str:
    """A number with ``digits`` decimals; ``–`` for a missing value; anything else as text."""
    if value is None:
        return "–"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (cells as ``str``; ``|`` inside a cell is escaped)."""
    def cells(r):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |"

    return "\n".join([cells(header), "|" + "---|" * len(header)] + [cells(r) for r in rows])


def text_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with left-aligned columns and a dashed rule under the header."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
