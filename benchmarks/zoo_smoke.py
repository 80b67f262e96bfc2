"""Acceptance smoke test of the backbone zoo: ``feat2gs probe`` end to end for every ``random-*`` backbone at
full size (fixed-seed random weights: the real architectures, no downloads) on a shared real scene.

Each backbone runs in its own ``feat2gs probe`` process (one at a time, so memory is freed between the big
models) on the same scene, split and initialisation: by default ``../shared/data/llff/fern``, 3 train views,
2 test views, long side 128, plane-sweep initialisation, a handful of warm-up / photometric / test-pose steps.
Backbone inputs keep each backbone's default size (the working resolution for most; 512 for DUSt3R/MASt3R
and SD, 518 for VGGT, MoGe's token budget).

Prints one JSON line per backbone (also appended to ``<output>/results.jsonl``): status (``ok`` / ``failed``
/ ``timeout``), wall time, the run's stage timings, peak resident memory of the process, PSNR, the feature
channels and grid, and the error's last line when it failed; each process's output is kept in
``<output>/logs/<backbone>.log``. Too slow for the test suite (full-size networks on a CPU); run it by hand:

    python benchmarks/zoo_smoke.py [--names random-dinov2,random-clip] [--long-side 128] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def default_scene() -> Path:
    data = Path(os.environ.get("FEAT2GS_TEST_DATA", REPO.parent / "shared" / "data"))
    return data / "llff" / "fern"


def random_names() -> list[str]:
    sys.path.insert(0, str(REPO))
    from backbones import backbone_names

    return [n for n in backbone_names() if n.startswith("random-")]


def probe_overrides(args, name: str, output: Path) -> list[str]:
    return [f"scene={args.scene}", f"backbone={name}", f"init={args.init}", f"scene.long_side={args.long_side}",
            f"split.n_train={args.n_train}", f"split.n_test={args.n_test}", f"train.warmup_steps={args.warmup}",
            f"train.steps={args.steps}", f"eval.pose_steps={args.pose_steps}", "eval.lpips=none",
            f"output.root={output / 'runs'}", f"output.name={name}", f"cache.dir={args.cache_dir or output / 'cache'}",
            *args.overrides]


def run_one(args, name: str, output: Path) -> dict:
    logs = output / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    cmd = [sys.executable, "-m", "feat2gs.cli", "probe", *probe_overrides(args, name, output)]
    row = {"bench": "zoo_smoke", "backbone": name}
    t = time.perf_counter()
    with open(log, "w") as f:
        f.write(" ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + args.timeout
        status = None
        while status is None:
            pid, status_code, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status = status_code
                break
            if time.monotonic() > deadline:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                row["status"] = "timeout"
                break
            time.sleep(0.5)
    row["wall_s"] = round(time.perf_counter() - t, 2)
    row["peak_rss_gb"] = round(usage.ru_maxrss / 2 ** 20, 2)  # ru_maxrss is in KiB on Linux
    rc = os.waitstatus_to_exitcode(status)
    row.setdefault("status", "ok" if rc == 0 else "failed")
    row["returncode"] = rc
    run = output / "runs" / name
    meta = run / "meta.json"
    if meta.is_file():
        m = json.loads(meta.read_text())
        row["timings_s"] = {k: round(v, 2) for k, v in m.get("timings_s", {}).items()}
        if m.get("error"):
            row["error"] = m["error"].splitlines()[-1][:300]
    metrics = run / "metrics.json"
    if metrics.is_file():
        m = json.loads(metrics.read_text())
        row["psnr"] = round(m["nvs"]["psnr"], 3)
        row["mean_color_psnr"] = round(m["nvs"]["mean_color_psnr"], 3)
        f = m["features"]
        row["features"] = {"channels": f.get("channels"), "grid": f.get("grid"), "pca_dim": f.get("pca_dim")}
    if row["status"] != "ok" and "error" not in row:
        tail = [ln for ln in log.read_text().splitlines() if ln.strip()]
        row["error"] = tail[-1][:300] if tail else "no output"
    row["log"] = str(log)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--names", default=None, help="comma-separated backbones (default: every random-* name)")
    ap.add_argument("--scene", default=str(default_scene()))
    ap.add_argument("--init", default="mvs", help="initialiser (fern has no GT depth: mvs)")
    ap.add_argument("--long-side", type=int, default=128)
    ap.add_argument("--n-train", type=int, default=3)
    ap.add_argument("--n-test", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--pose-steps", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per backbone")
    ap.add_argument("--output", default=None, help="folder (default runs/zoo_smoke/<time>)")
    ap.add_argument("--cache-dir", default=None, help="feature cache (default <output>/cache)")
    ap.add_argument("overrides", nargs="*", help="extra feat2gs config overrides key=value")
    args = ap.parse_args(argv)
    if not Path(args.scene).is_dir():
        print(f"zoo_smoke: scene {args.scene} not found (set --scene or FEAT2GS_TEST_DATA)", file=sys.stderr)
        return 2
    output = Path(args.output or REPO / "runs" / "zoo_smoke" / time.strftime("%Y%m%d-%H%M%S"))
    output.mkdir(parents=True, exist_ok=True)
    names = args.names.split(",") if args.names else random_names()
    failed = 0
    for name in names:
        row = run_one(args, name, output)
        failed += row["status"] != "ok"
        line = json.dumps(row)
        print(line, flush=True)
        with open(output / "results.jsonl", "a") as f:
            f.write(line + "\n")
    print(json.dumps({"bench": "zoo_smoke", "summary": True, "passed": len(names) - failed, "failed": failed,
                      "output": str(output)}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
