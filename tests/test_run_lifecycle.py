"""Run folders: process identity and heartbeat in meta.json, and how a dead run is told from a live one."""

import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta

from omegaconf import OmegaConf

from feat2gs import run as run_mod
from feat2gs.errors import ConfigError, Terminated
from feat2gs.run import RunDir, describe_error, run_state
from feat2gs.run_warnings import score_warnings


def make_run(tmp_path, **meta):
    run = RunDir.create(str(tmp_path), "r", OmegaConf.create({"a": 1}), 0)
    if meta:
        run.meta.update(meta)
        run._write_meta()
    return run


def test_meta_has_process_and_heartbeat(tmp_path):
    run = make_run(tmp_path)
    m = json.loads((run.path / "meta.json").read_text())
    assert m["status"] == "running" and m["pid"] == os.getpid() and m["hostname"] == socket.gethostname()
    assert m["heartbeat"] and m["started"]
    assert run_state(run.path) == ("running", f"process {os.getpid()}")
    run.finish("complete")
    assert run_state(run.path) == ("complete", "")


def test_heartbeat_thread_refreshes(tmp_path, monkeypatch):
    monkeypatch.setattr(run_mod, "HEARTBEAT_S", 0.05)
    run = make_run(tmp_path)
    run.meta["heartbeat"] = "2000-01-01T00:00:00+00:00"
    time.sleep(0.3)
    assert json.loads((run.path / "meta.json").read_text())["heartbeat"] > "2001"
    run.finish("failed", error="x")
    beat = json.loads((run.path / "meta.json").read_text())["heartbeat"]
    time.sleep(0.2)  # stopped with the run
    assert json.loads((run.path / "meta.json").read_text())["heartbeat"] == beat


def test_dead_process_is_stale(tmp_path):
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    run = make_run(tmp_path, pid=p.pid, pid_start_ticks=None)
    state, reason = run_state(run.path)
    assert state == "stale" and str(p.pid) in reason


def test_reused_pid_is_stale(tmp_path):
    run = make_run(tmp_path, pid_start_ticks=run_mod.process_start_ticks(os.getpid()) + 1)
    assert run_state(run.path)[0] == "stale"


def test_other_host_uses_the_heartbeat(tmp_path):
    now = datetime.now().astimezone()
    run = make_run(tmp_path, hostname="elsewhere", heartbeat=now.isoformat())
    assert run_state(run.path)[0] == "running"
    old = (now - timedelta(seconds=run_mod.STALE_AFTER_S + 5)).isoformat()
    run = make_run(tmp_path, hostname="elsewhere", heartbeat=old)
    state, reason = run_state(run.path)
    assert state == "stale" and "no heartbeat" in reason


def test_unreadable_meta(tmp_path):
    (tmp_path / "meta.json").write_text("{")
    assert run_state(tmp_path)[0] == "unknown"


def test_failure_reasons():
    import signal

    assert describe_error(KeyboardInterrupt()) == "interrupted (SIGINT)"
    assert describe_error(Terminated(signal.SIGTERM)) == "terminated by SIGTERM"
    assert describe_error(ConfigError("seed", "bad")) == "seed: bad"
    assert describe_error(OSError(30, "Read-only file system", "/x/y")) == "/x/y: Read-only file system"
    assert describe_error(RuntimeError("a\nb")) == "RuntimeError: a"


def test_score_warnings():
    assert score_warnings({"psnr": 25.0, "ssim": 0.8, "mean_color_psnr": 12.0}) == []
    (w,) = score_warnings({"psnr": 9.79, "ssim": 0.3, "mean_color_psnr": 12.54})
    assert "below the mean-colour" in w and "9.79" in w
    (w,) = score_warnings({"psnr": 200.0, "ssim": 1.0, "mean_colour_psnr": 200.0})
    assert "degenerate" in w and "200.00" in w
    assert score_warnings({"psnr": None, "ssim": None}) == []
