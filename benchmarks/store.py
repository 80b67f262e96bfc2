"""The results store: one SQLite file (standard library ``sqlite3``, write-ahead log).

Tables (columns generated from :mod:`benchmarks.records`):

* ``runs``: one row per ``run_id`` (primary key) -- the identity fields, ``status``
  (``complete`` / ``failed`` / ``running``) and every result field (dicts and lists as JSON text);
* ``views``: per-view metrics in long form (``run_id``, ``view``, ``name``, ``metric``, ``value``);
* ``artefacts``: the files of a complete run (``run_id``, ``kind``, ``path``, ``bytes``);
* ``store_meta``: ``format`` (``feat2gs-results``) and ``schema`` (the version and the column list).

Writing a record is one transaction (the run row replaced, its views and artefacts rewritten), so a reader
or a crash sees a run either wholly or not at all. A store written by another schema (an older feat2gs) is
refused with one error saying how to rebuild it (``feat2gs store import`` of the run folders); a file that
is not SQLite, or SQLite without the feat2gs tables, is refused with one error naming the file.
"""

from __future__ import annotations

import json
import sqlite3
import typing
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

from feat2gs.errors import InputError

from .records import (COMPLETE, RUNNING, Artefact, RunIdentity, RunRecord, RunResult, ViewMetric, identity_fields,
                      result_fields)

FORMAT = "feat2gs-results"
SCHEMA_VERSION = 1

_SQL_TYPES = {float: "REAL", int: "INTEGER", bool: "INTEGER", str: "TEXT", dict: "TEXT", list: "TEXT"}


def _sql_type(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    base = args[0] if args else tp
    base = typing.get_origin(base) or base
    return _SQL_TYPES.get(base, "TEXT")


def run_columns() -> list[tuple[str, str]]:
    """(name, SQL type) of the ``runs`` table, in order."""
    cols = [("run_id", "TEXT")]
    for cls in (RunIdentity, RunResult):
        hints = typing.get_type_hints(cls)
        cols += [(f.name, _sql_type(hints[f.name])) for f in fields(cls)]
    return cols


def schema_signature() -> str:
    return json.dumps({"version": SCHEMA_VERSION, "runs": [c for c, _ in run_columns()]})


def _ddl() -> list[str]:
    cols = ",\n  ".join(f"{n} {t}" + (" PRIMARY KEY" if n == "run_id" else "") for n, t in run_columns())
    return [
        "CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"CREATE TABLE runs (\n  {cols}\n)",
        "CREATE TABLE views (run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE, view INTEGER NOT NULL, "
        "name TEXT, metric TEXT NOT NULL, value REAL, PRIMARY KEY (run_id, view, metric))",
        "CREATE TABLE artefacts (run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE, kind TEXT NOT NULL, "
        "path TEXT NOT NULL, bytes INTEGER, PRIMARY KEY (run_id, kind))",
        "CREATE INDEX runs_group ON runs (status, mode, backbone, dataset, scene)",
    ]


def _encode(v: Any) -> Any:
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    if isinstance(v, bool):
        return int(v)
    return v


class ResultStore:
    """A results store at ``path``. ``create=True`` creates the file when missing; otherwise a missing file
    is an InputError. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: Union[str, Path], create: bool = True):
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise InputError(str(self.path), "results store not found")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif self.path.is_dir():
            raise InputError(str(self.path), "is a folder, not a results store file")
        self._conn = self._open()

    # --------------------------------------------------------------------------------------- opening
    def _open(self) -> sqlite3.Connection:
        where = str(self.path)
        try:
            conn = sqlite3.connect(where, timeout=30.0, isolation_level=None)
            conn.row_factory = sqlite3.Row
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as e:
            raise InputError(where, f"not a feat2gs results store: the file is not an SQLite database ({e})") from None
        try:
            if not tables:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("BEGIN IMMEDIATE")
                for stmt in _ddl():
                    conn.execute(stmt)
                conn.executemany("INSERT INTO store_meta VALUES (?, ?)",
                                 [("format", FORMAT), ("schema", schema_signature())])
                conn.execute("COMMIT")
            else:
                self._check(conn, tables)
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as e:
            conn.close()
            raise InputError(where, f"corrupt results store ({e})") from None
        except InputError:
            conn.close()
            raise
        return conn

    def _check(self, conn: sqlite3.Connection, tables: set) -> None:
        where = str(self.path)
        if "store_meta" not in tables:
            raise InputError(where, "an SQLite database but not a feat2gs results store "
                                    f"(tables: {', '.join(sorted(tables))})")
        meta = dict(conn.execute("SELECT key, value FROM store_meta").fetchall())
        if meta.get("format") != FORMAT:
            raise InputError(where, f"an SQLite database but not a feat2gs results store (format "
                                    f"{meta.get('format')!r})")
        if meta.get("schema") != schema_signature():
            try:
                version = json.loads(meta.get("schema") or "{}").get("version", "?")
            except ValueError:
                version = "?"
            raise InputError(where, f"results store schema version {version} differs from this feat2gs's "
                                    f"version {SCHEMA_VERSION} (its columns differ); rebuild it from the run "
                                    f"folders: `feat2gs store import RUN_DIRS... --store NEW.sqlite`")
        ok = conn.execute("PRAGMA quick_check").fetchone()[0]
        if ok != "ok":
            raise InputError(where, f"corrupt results store (integrity check: {ok})")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --------------------------------------------------------------------------------------- writing
    def put(self, record: RunRecord) -> None:
        """Write one run (row, per-view metrics, artefacts) in one transaction, replacing what was there."""
        row = {"run_id": record.run_id, **asdict(record.identity), **asdict(record.result)}
        cols = [c for c, _ in run_columns()]
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM views WHERE run_id = ?", (record.run_id,))
            conn.execute("DELETE FROM artefacts WHERE run_id = ?", (record.run_id,))
            conn.execute(f"INSERT OR REPLACE INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                         [_encode(row[c]) for c in cols])
            conn.executemany("INSERT INTO views VALUES (?, ?, ?, ?, ?)",
                             [(record.run_id, v.view, v.name, v.metric, v.value) for v in record.views])
            conn.executemany("INSERT INTO artefacts VALUES (?, ?, ?, ?)",
                             [(record.run_id, a.kind, a.path, a.bytes) for a in record.artefacts])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def mark_running(self, identity: RunIdentity, run_dir: str, suite: Optional[str] = None) -> None:
        """Record that a run was started (never over a complete run)."""
        if self.status(identity.run_id) == COMPLETE:
            return
        self.put(RunRecord(identity, RunResult(status=RUNNING, run_dir=run_dir, suite=suite)))

    # --------------------------------------------------------------------------------------- reading
    def status(self, run_id: str) -> Optional[str]:
        row = self._conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else row[0]

    def statuses(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self._conn.execute("SELECT run_id, status FROM runs")}

    def records(self, status: Optional[str] = COMPLETE) -> list[RunRecord]:
        """Every run (of ``status``; None: all) as records, with views and artefacts."""
        q, args = "SELECT * FROM runs", ()
        if status is not None:
            q, args = q + " WHERE status = ?", (status,)
        rows = self._conn.execute(q + " ORDER BY dataset, scene, backbone, mode, seed", args).fetchall()
        views: dict[str, list[ViewMetric]] = {}
        for r in self._conn.execute("SELECT * FROM views ORDER BY run_id, view, metric"):
            views.setdefault(r["run_id"], []).append(ViewMetric(r["view"], r["name"], r["metric"], r["value"]))
        arts: dict[str, list[Artefact]] = {}
        for r in self._conn.execute("SELECT * FROM artefacts ORDER BY run_id, kind"):
            arts.setdefault(r["run_id"], []).append(Artefact(r["kind"], r["path"], r["bytes"]))
        return [self._record(r, views.get(r["run_id"], []), arts.get(r["run_id"], [])) for r in rows]

    @staticmethod
    def _record(row: sqlite3.Row, views, arts) -> RunRecord:
        hints = typing.get_type_hints(RunResult)
        ident = RunIdentity(**{k: row[k] for k in identity_fields()})
        res = {}
        for k in result_fields():
            v, tp = row[k], hints[k]
            if tp in (dict, list):
                v = tp() if v is None else json.loads(v)
            elif v is not None and tp == Optional[bool]:
                v = bool(v)
            res[k] = v
        rec = RunRecord(ident, RunResult(**res), views, arts)
        if rec.run_id != row["run_id"]:
            raise InputError("runs.run_id", f"stored id {row['run_id']} does not match its identity ({rec.run_id})")
        return rec

    def rows(self, table: str = "runs") -> tuple[list[str], list[tuple]]:
        """(column names, rows) of a table, for export."""
        if table not in ("runs", "views", "artefacts"):
            raise InputError("table", f"unknown table {table!r}; expected runs, views or artefacts")
        cur = self._conn.execute(f"SELECT * FROM {table} ORDER BY run_id")
        return [d[0] for d in cur.description], [tuple(r) for r in cur.fetchall()]

    def counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self._conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status")}

    # --------------------------------------------------------------------------------------- export
    def export_csv(self, path: Union[str, Path], table: str = "runs") -> Path:
        import csv

        cols, rows = self.rows(table)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            w.writerows(rows)
        return path

    def export_parquet(self, path: Union[str, Path], table: str = "runs") -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols, rows = self.rows(table)
        types = dict(run_columns()) if table == "runs" else {}
        arrow = {"REAL": pa.float64(), "INTEGER": pa.int64(), "TEXT": pa.string()}
        arrays = []
        for i, c in enumerate(cols):
            values = [r[i] for r in rows]
            t = arrow.get(types.get(c)) if c in types else None
            arrays.append(pa.array(values, type=t))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(arrays, names=cols), path)
        return path


def import_run_dirs(store: ResultStore, paths: Sequence[Union[str, Path]], log=print) -> dict[str, int]:
    """Index run folders (each path a run folder or a folder searched for run folders) into ``store``.
    Returns counts per status. A run already complete in the store is not replaced by a failed copy."""
    counts: dict[str, int] = {}
    for run_dir in find_run_dirs(paths):
        from .records import record_from_run_dir

        rec = record_from_run_dir(run_dir)
        if rec.status != COMPLETE and store.status(rec.run_id) == COMPLETE:
            counts["kept"] = counts.get("kept", 0) + 1
            continue
        store.put(rec)
        counts[rec.status] = counts.get(rec.status, 0) + 1
        log(f"{rec.status:>8s}  {rec.identity.label}  {run_dir}")
    return counts


def find_run_dirs(paths: Iterable[Union[str, Path]]) -> list[Path]:
    """Run folders (config.yaml + meta.json) at or under ``paths``; a folder holding other run folders (a
    sweep's own folder) is not itself a run."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise InputError(str(p), "no such run folder")
        cands = sorted({m.parent.resolve() for m in p.rglob("meta.json") if (m.parent / "config.yaml").is_file()})
        found = [c for c in cands if not any(o != c and c in o.parents for o in cands)]
        if not found:
            raise InputError(str(p), "no run folders (config.yaml + meta.json) at or under this path")
        out.extend(f for f in found if f not in out)
    return out
