"""Writing benchmark results: a markdown + JSON file under benchmarks/results/ and the matching README block
(between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``), so README numbers are never typed by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def publish(name: str, markdown: str, data: Any, readme: bool = True) -> None:
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(markdown + "\n")
    (out / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
    path = REPO / "README.md"
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if readme and path.exists():
        text = path.read_text()
        if begin in text and end in text:
            i, j = text.index(begin) + len(begin), text.index(end)
            path.write_text(text[:i] + "\n" + markdown + "\n" + text[j:])
