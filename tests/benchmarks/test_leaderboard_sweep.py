"""Sweeps end to end on tiny synthetic runs: failures recorded, resuming, a SIGKILL mid-sweep, re-indexing run
folders, and the Ray executor computing the same numbers as local worker processes."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from leaderboard_testlib import TINY_VIT, write_suite

from benchmarks.records import COMPLETE, FAILED, JOB_FILE, REQUIRED_FILES
from benchmarks.runner import default_runs_root, run_sweep
from benchmarks.store import ResultStore
from benchmarks.suite import load_suite
from feat2gs.cli import main as cli

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _complete_rows(store: Path) -> list[tuple[str, str]]:
    """(run_id, run_dir) of complete runs, read the way any other reader would (its own connection)."""
    if not store.exists():
        return []
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("SELECT run_id, run_dir FROM runs WHERE status = 'complete'").fetchall()
    except sqlite3.OperationalError:  # the tables are being created
        return []
    finally:
        conn.close()


def _assert_whole(run_dir: str) -> None:
    d = Path(run_dir)
    missing = [n for n in (*REQUIRED_FILES, JOB_FILE) if not (d / n).is_file()]
    assert not missing, f"complete run {d.name} lacks {missing}"
    assert json.loads((d / "meta.json").read_text())["status"] == "complete"


def test_failed_runs_are_recorded_resumed_and_reindexed(tmp_path, capsys):
    suite = write_suite(tmp_path / "mixed.yaml", modes="G", seeds=[0, 1], scenes=[
        "synthetic", {"path": "synthetic", "dataset": "broken", "overrides": ["scene.options.num_views=2"]}])
    store = tmp_path / "mixed.sqlite"
    assert cli(["sweep", str(suite), "--store", str(store), "--no-live"]) == 1  # some runs failed
    out = capsys.readouterr()
    assert "2 complete, 2 failed" in out.out and "failed: broken/synthetic iuvrgb G seed" in out.err
    with ResultStore(store) as st:
        assert st.counts() == {COMPLETE: 2, FAILED: 2}
        failed = st.records(status=FAILED)
        assert all("split" in r.result.error for r in failed)  # the run's own error, kept
        done = {r.run_id: r for r in st.records()}
    for r in done.values():
        _assert_whole(r.result.run_dir)
        assert r.result.wall_s > 0 and r.result.peak_mem_mb > 100 and r.result.device.startswith("cpu")
        assert r.result.suite == "mixed" and len(r.views) >= 2 and r.artefacts

    # resume: complete runs are skipped, failed ones retried
    s = run_sweep(load_suite(suite), store, live=False, log=lambda *_: None)
    assert (s.skipped, s.complete, s.failed) == (2, 0, 2)

    # a run whose files are all written but that never reached the store is indexed, not rerun
    victim = next(iter(done.values()))
    stamp = (Path(victim.result.run_dir) / JOB_FILE).stat().st_mtime_ns
    conn = sqlite3.connect(store)
    conn.execute("DELETE FROM runs WHERE run_id = ?", (victim.run_id,))
    conn.commit()
    conn.close()
    s = run_sweep(load_suite(suite), store, live=False, log=lambda *_: None)
    assert (s.skipped, s.recovered, s.complete) == (1, 1, 0)
    assert (Path(victim.result.run_dir) / JOB_FILE).stat().st_mtime_ns == stamp
    with ResultStore(store) as st:
        assert st.records()[0].result == done[st.records()[0].run_id].result

    # `store import` of the run folders rebuilds the same records; export works on it
    store2 = tmp_path / "imported.sqlite"
    assert cli(["store", "import", str(default_runs_root(store)), "--store", str(store2)]) == 0
    with ResultStore(store2) as st:
        again = {r.run_id: r for r in st.records()}
    assert again.keys() == done.keys()
    for k in done:
        assert again[k].identity == done[k].identity and again[k].result.psnr == done[k].result.psnr
        assert again[k].result.peak_mem_mb == done[k].result.peak_mem_mb
    assert cli(["store", "export", "--store", str(store2), "--out", str(tmp_path / "export")]) == 0
    assert (tmp_path / "export" / "runs.parquet").is_file() and (tmp_path / "export" / "views.csv").is_file()


def test_one_sweep_per_store(tmp_path):
    import fcntl

    from feat2gs.errors import InputError

    suite = load_suite(write_suite(tmp_path / "s.yaml", modes="G"))
    store = tmp_path / "s.sqlite"
    with open(tmp_path / "s.sqlite.lock", "w") as f:
        f.write("4242")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_EX)  # another sweep holds the store
        with pytest.raises(InputError, match=r"s.sqlite: another sweep is writing this store \(pid 4242\)"):
            run_sweep(suite, store, live=False)
    assert not default_runs_root(store).exists()


def _children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int(next(line for line in (p / "status").read_text().splitlines()
                                if line.startswith("PPid:")).split()[1])
            except (OSError, StopIteration, ValueError):
                continue
            if ppid == pid:
                out.append(int(p.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("State:"))
        return "Z" not in state.split()[1]
    except (OSError, StopIteration):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to follow the worker processes")
def test_sigkill_mid_sweep_then_resume_counts_every_run_once(tmp_path):
    suite = write_suite(tmp_path / "kill.yaml", modes="GTA", seeds=[0, 1], overrides=["train.steps=40"])
    store = tmp_path / "kill.sqlite"
    n = len(load_suite(suite).jobs)
    assert n == 6
    env = dict(os.environ, PYTHONPATH=str(REPO), TQDM_DISABLE="1")
    proc = subprocess.Popen([sys.executable, "-m", "feat2gs.cli", "sweep", str(suite), "--store", str(store),
                             "--no-live"], cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = []
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            rows = _complete_rows(store)
            for _, run_dir in rows:  # a run is counted only once every file is there
                _assert_whole(run_dir)
            workers = workers or _children(proc.pid)
            if len(rows) >= 2:
                break
            assert proc.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("the sweep did not complete two runs in time")
        os.kill(proc.pid, signal.SIGKILL)  # the sweep process only: its workers must die with it
        proc.wait(timeout=30)
        t = time.time()
        while any(_alive(w) for w in workers) and time.time() - t < 15:
            time.sleep(0.1)
        assert workers and not any(_alive(w) for w in workers), "worker processes outlived the killed sweep"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    done_before = _complete_rows(store)
    assert 2 <= len(done_before) < n, "the kill did not land mid-sweep"
    for _, run_dir in done_before:
        _assert_whole(run_dir)
    runs_root = default_runs_root(store)
    partial = [d for d in runs_root.iterdir() if d.is_dir() and not d.name.startswith(".")
               and not (d / JOB_FILE).is_file()]
    assert all(d.name.split("_")[0] not in {r for r, _ in done_before} for d in partial)

    s = run_sweep(load_suite(suite), store, live=False, log=lambda *_: None)
    assert s.failed == 0 and s.skipped + s.recovered + s.complete == n
    with ResultStore(store) as st:
        assert st.counts() == {COMPLETE: n}
        recs = st.records()
    assert len({r.run_id for r in recs}) == n
    for r in recs:
        _assert_whole(r.result.run_dir)
    folders = [d for d in runs_root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    assert sorted(d.name.split("_")[0] for d in folders) == sorted(r.run_id for r in recs)  # no stale folders


def test_ray_executor_matches_local(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'feat2gs[ray]')")
    suite = load_suite(write_suite(tmp_path / "ray.yaml", backbones=["iuvrgb", TINY_VIT], modes="A"))
    assert len(suite.jobs) == 2
    results = {}
    for ex in ("local", "ray"):
        s = run_sweep(suite, tmp_path / f"{ex}.sqlite", executor=ex, jobs=1, live=False, log=lambda *_: None)
        assert (s.complete, s.failed) == (2, 0), ex
        with ResultStore(tmp_path / f"{ex}.sqlite") as st:
            results[ex] = {r.run_id: r for r in st.records()}
    assert results["local"].keys() == results["ray"].keys()
    for k, a in results["local"].items():
        b = results["ray"][k]
        for f in ("psnr", "psnr_full", "ssim", "mean_colour_psnr", "accuracy", "completeness", "distance",
                  "gaussians", "final_photo_loss"):
            assert getattr(a.result, f) == getattr(b.result, f), (a.identity.label, f)
        assert [(v.metric, v.value) for v in a.views] == [(v.metric, v.value) for v in b.views]
        assert a.result.psnr is not None
