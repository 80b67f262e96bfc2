"""``feat2gs runs [ROOT]``: the run folders under ROOT (default ``runs``, the default ``output.root``) and their
state: complete, failed (with the error), running, or stale (marked running, but its process is gone or its
heartbeat stopped: killed, or the machine went down)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from ..io.tables import fmt, text_table

#: how deep below ROOT run folders are looked for (sweeps keep their runs in <suite>/runs/<run>)
MAX_DEPTH = 3


def find_runs(root: Path, depth: int = MAX_DEPTH) -> list[Path]:
    """Folders holding a ``meta.json`` under ``root`` (not below another run folder's own files)."""
    out = []
    if (root / "meta.json").is_file():
        out.append(root)
    if depth > 0:
        try:
            children = sorted(p for p in root.iterdir() if p.is_dir())
        except OSError:
            return out
        for c in children:
            out.extend(find_runs(c, depth - 1))
    return out


def run_rows(root: Path) -> list[list[str]]:
    from ..run import read_meta, run_state

    rows = []
    for path in find_runs(root):
        meta = read_meta(path) or {}
        state, reason = run_state(path, meta or None)
        psnr = None
        try:
            metrics = json.loads((path / "metrics.json").read_text())
            psnr = (metrics.get("summary") or metrics.get("nvs") or {}).get("psnr")
        except (OSError, ValueError, AttributeError):
            pass
        rows.append([str(path.relative_to(root)) if path != root else ".", state,
                     str(meta.get("started", "")).replace("T", " ")[:19], fmt(psnr, 2), reason[:100]])
    return rows


def cmd_runs(args) -> int:
    root = Path(args.root).expanduser()
    if not root.is_dir():
        raise InputError(str(root), "not a folder of runs")
    rows = run_rows(root)
    if args.state:
        rows = [r for r in rows if r[1] == args.state]
    print(text_table(["run", "state", "started", "PSNR", "reason"], rows) if rows else f"no runs under {root}")
    return 0


def register(sub) -> None:
    help_ = "list run folders and their state (complete, failed, running, stale)"
    p = sub.add_parser("runs", help=help_, description=__doc__)
    p.add_argument("root", nargs="?", default="runs", help="folder of runs (default: runs)")
    p.add_argument("--state", choices=("complete", "failed", "running", "stale", "unknown"), default=None,
                   help="only runs in this state")
    p.set_defaults(func=cmd_runs)
