"""``feat2gs store import RUN_DIRS...``, ``feat2gs store export`` and ``feat2gs store show``: the results
store (see ``benchmarks/store.py``)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_STORE = "runs/results.sqlite"


def cmd_import(args) -> int:
    from benchmarks.store import ResultStore, import_run_dirs

    with ResultStore(args.store) as store:
        counts = import_run_dirs(store, args.run_dirs)
        total = store.counts()
    print(f"imported: {', '.join(f'{v} {k}' for k, v in sorted(counts.items())) or 'nothing'}; store {args.store} "
          f"now holds {', '.join(f'{v} {k}' for k, v in sorted(total.items()))}")
    return 0


def cmd_export(args) -> int:
    from benchmarks.store import ResultStore

    out = Path(args.out)
    with ResultStore(args.store, create=False) as store:
        for table in ("runs", "views", "artefacts"):
            for fmt in args.formats.split(","):
                if fmt == "csv":
                    print(store.export_csv(out / f"{table}.csv", table))
                elif fmt == "parquet":
                    print(store.export_parquet(out / f"{table}.parquet", table))
                else:
                    from feat2gs.errors import InputError

                    raise InputError("--formats", f"unknown format {fmt!r}; expected csv and/or parquet")
    return 0


def cmd_show(args) -> int:
    from benchmarks.store import ResultStore

    from ..io.tables import text_table

    with ResultStore(args.store, create=False) as store:
        recs = store.records(status=None)
    rows = [[r.run_id, r.status, r.identity.dataset, r.identity.scene, r.identity.backbone, r.identity.mode,
             r.identity.seed, "-" if r.result.psnr is None else f"{r.result.psnr:.2f}",
             (r.result.error or "").strip().splitlines()[-1][:60] if r.result.error else ""] for r in recs]
    print(text_table(["run_id", "status", "dataset", "scene", "backbone", "mode", "seed", "PSNR", "error"], rows))
    return 0


def register(sub) -> None:
    s = sub.add_parser("store", help="the results store: import run folders, export CSV/Parquet, show")
    ssub = s.add_subparsers(dest="store_command", required=True)
    p = ssub.add_parser("import", help="index existing run folders (or folders holding them) into a store")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--store", default=DEFAULT_STORE, help=f"results store (default {DEFAULT_STORE})")
    p.set_defaults(func=cmd_import)
    p = ssub.add_parser("export", help="write the runs, views and artefacts tables as CSV and Parquet")
    p.add_argument("--store", default=DEFAULT_STORE)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--formats", default="csv,parquet", help="csv, parquet or both (comma-separated)")
    p.set_defaults(func=cmd_export)
    p = ssub.add_parser("show", help="list the runs of a store with their status")
    p.add_argument("--store", default=DEFAULT_STORE)
    p.set_defaults(func=cmd_show)
