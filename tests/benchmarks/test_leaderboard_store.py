"""The SQLite results store: round trip, one transaction per run, exports, and bad files."""

import csv
import json
import sqlite3

import pytest
from leaderboard_testlib import fake_record

from benchmarks.records import COMPLETE, FAILED, RUNNING, RunResult
from benchmarks.store import ResultStore, run_columns
from feat2gs.errors import InputError


def test_round_trip_wal_and_replace(tmp_path):
    path = tmp_path / "r.sqlite"
    a, b = fake_record("iuvrgb", "G", "s1", 0, 20.5), fake_record("dinov2", "T", "s2", 1, 22.0)
    with ResultStore(path) as st:
        st.put(a)
        st.put(b)
        st.put(a)  # replacing keeps one row and one set of views
        assert st.counts() == {COMPLETE: 2}
        recs = {r.run_id: r for r in st.records()}
    assert recs[a.run_id] == a and recs[b.run_id] == b  # every field, views included, survives
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cols = [r[1] for r in conn.execute("PRAGMA table_info(runs)")]
    assert cols[:1] == ["run_id"] and {"status", "scene", "backbone", "mode", "seed", "psnr"} <= set(cols)
    assert conn.execute("SELECT COUNT(*) FROM views").fetchone()[0] == 4


def test_running_never_overwrites_complete_and_failed_keeps_error(tmp_path):
    a = fake_record("iuvrgb", "G", "s1", 0, 20.5)
    with ResultStore(tmp_path / "r.sqlite") as st:
        st.mark_running(a.identity, "/x")
        assert st.status(a.run_id) == RUNNING
        st.put(a)
        st.mark_running(a.identity, "/x")
        assert st.status(a.run_id) == COMPLETE
        f = fake_record("clip", "A", "s1", 0, None)
        f.result = RunResult(status=FAILED, error="ValueError: boom")
        st.put(f)
        (got,) = st.records(status=FAILED)
        assert got.result.error == "ValueError: boom" and got.result.psnr is None


def test_a_failing_write_leaves_the_previous_run_intact(tmp_path):
    a = fake_record("iuvrgb", "G", "s1", 0, 20.5)
    with ResultStore(tmp_path / "r.sqlite") as st:
        st.put(a)
        bad = fake_record("iuvrgb", "G", "s1", 0, 99.0)
        bad.views = bad.views + bad.views[:1]  # duplicate (run, view, metric): the insert fails mid-transaction
        with pytest.raises(sqlite3.IntegrityError):
            st.put(bad)
        (got,) = st.records()
        assert got.result.psnr == 20.5 and len(got.views) == 2


def test_exports_csv_and_parquet(tmp_path):
    import pyarrow.parquet as pq

    recs = [fake_record("iuvrgb", m, "s1", k, 20.0 + k) for m in "GT" for k in range(2)]
    with ResultStore(tmp_path / "r.sqlite") as st:
        for r in recs:
            st.put(r)
        st.export_csv(tmp_path / "runs.csv")
        st.export_parquet(tmp_path / "runs.parquet")
        st.export_parquet(tmp_path / "views.parquet", "views")
    rows = list(csv.DictReader(open(tmp_path / "runs.csv")))
    assert len(rows) == 4 and sorted(float(r["psnr"]) for r in rows) == [20.0, 20.0, 21.0, 21.0]
    t = pq.read_table(tmp_path / "runs.parquet")
    assert t.num_rows == 4 and t.column_names == [c for c, _ in run_columns()]
    assert sorted(t.column("psnr").to_pylist()) == [20.0, 20.0, 21.0, 21.0]
    assert json.loads(t.column("versions")[0].as_py()) == {"torch": "x"}
    assert pq.read_table(tmp_path / "views.parquet").num_rows == 8


def test_not_sqlite_is_one_clear_error(tmp_path):
    p = tmp_path / "junk.sqlite"
    p.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(InputError, match=r"junk.sqlite: not a feat2gs results store: the file is not an SQLite"):
        ResultStore(p)


def test_truncated_store_is_one_clear_error(tmp_path):
    p = tmp_path / "r.sqlite"
    with ResultStore(p) as st:
        for k in range(30):
            st.put(fake_record("iuvrgb", "G", f"s{k}", 0, 20.0))
    conn = sqlite3.connect(p)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = p.read_bytes()
    p.write_bytes(data[:100] + b"\x00" * 200 + data[300:len(data) // 2])  # header survives, pages do not
    with pytest.raises(InputError, match=r"r.sqlite: (corrupt results store|not a feat2gs results store)"):
        with ResultStore(p) as st:
            st.records()


def test_foreign_sqlite_is_one_clear_error(tmp_path):
    p = tmp_path / "other.db"
    conn = sqlite3.connect(p)
    conn.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(InputError, match=r"other.db: an SQLite database but not a feat2gs results store "
                                         r"\(tables: customers\)"):
        ResultStore(p)


def test_older_schema_is_one_clear_error_and_the_file_is_untouched(tmp_path):
    p = tmp_path / "old.sqlite"
    old_cols = ["run_id", "scene", "backbone", "mode", "seed", "status", "psnr"]
    conn = sqlite3.connect(p)
    conn.execute("CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute(f"CREATE TABLE runs ({', '.join(old_cols)})")
    conn.executemany("INSERT INTO store_meta VALUES (?, ?)",
                     [("format", "feat2gs-results"), ("schema", json.dumps({"version": 0, "runs": old_cols}))])
    conn.execute("INSERT INTO runs VALUES ('x', 'fern', 'iuvrgb', 'G', 0, 'complete', 20.0)")
    conn.commit()
    conn.close()
    before = p.read_bytes()
    with pytest.raises(InputError, match=r"old.sqlite: results store schema version 0 differs .*feat2gs store import"):
        ResultStore(p)
    assert p.read_bytes() == before


def test_missing_store_for_reading(tmp_path):
    with pytest.raises(InputError, match="results store not found"):
        ResultStore(tmp_path / "nope.sqlite", create=False)
