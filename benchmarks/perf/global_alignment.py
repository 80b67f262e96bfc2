"""Speed of the global alignment (``feat2gs.posefree.alignment``) for 3 / 6 / 12 views at 512 x 384 point maps.
Prints one JSON line per case.

Data: the synthetic scene rendered at ``--width`` x ``--height`` with V views, its GT turned into pairwise
point maps of the complete symmetrised graph (V (V - 1) pairs; ``pairwise_from_ground_truth``: 0.5 % noise,
5 % outliers). Timed separately: the MST initialisation (``init_s``), the optimisation steps (``step_s``, the
mean over ``--steps`` timed steps after ``--warmup`` untimed ones) and the cleaning. ``total_300_s`` = init +
300 x step + cleaning: the reference schedule (300 steps); on CPU the steps are timed on a few iterations
and the total extrapolated (``extrapolated: true``); ``--full`` runs all 300. Also reported: the pose errors
of the run (relative rotation / translation direction, degrees; focal error) after the timed steps, and the
peak resident memory. CUDA (``--device cuda``, default when present) runs everything on the GPU.

Usage: ``python benchmarks/perf/global_alignment.py [--views 3,6,12] [--steps 5] [--threads 2] [--full]
[--publish]`` (``--publish``: write benchmarks/results/global-alignment.{md,json} and the README block).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import torch

from feat2gs.data.synthetic import make_synthetic_scene
from feat2gs.posefree import alignment as ga
from feat2gs.posefree.metrics import pairwise_pose_errors
from feat2gs.posefree.pairwise import pairwise_from_ground_truth


def run_case(views: int, width: int, height: int, steps: int, warmup: int, device: str, full: bool) -> dict:
    scene = make_synthetic_scene(seed=0, num_views=views, width=width, height=height)
    pred, _ = pairwise_from_ground_truth(scene, noise=0.005, outlier_frac=0.05)
    n_steps = 300 if full else warmup + steps
    timings: list[float] = []
    orig_step = torch.optim.Adam.step

    def timed_step(self, *a, **k):  # time each optimiser iteration (forward + backward + step)
        out = orig_step(self, *a, **k)
        if device == "cuda":
            torch.cuda.synchronize()
        now = time.perf_counter()
        timings.append(now)
        return out

    torch.optim.Adam.step = timed_step
    try:
        t0 = time.perf_counter()
        res = ga.global_alignment(pred, ga.AlignmentOptions(steps=n_steps, clean=False), device=device)
        t_end = time.perf_counter()
        t1 = time.perf_counter()
        ga.occluding_points(res.cameras, res.depth, res.points, res.confidence)
        clean_s = time.perf_counter() - t1
    finally:
        torch.optim.Adam.step = orig_step
    # timings[k] = end of step k; the first step's start is the end of the initialisation
    per_step = [b - a for a, b in zip(timings[:-1], timings[1:])]
    timed = per_step[warmup - 1:] if not full else per_step
    step_s = sum(timed) / max(1, len(timed))
    init_s = res.meta["seconds"] - (timings[-1] - timings[0]) - step_s  # everything before the first step ends
    init_s = max(0.0, min(init_s, t_end - t0))
    err = pairwise_pose_errors(res.cameras, scene.cameras)
    f_err = float((res.cameras.K[:, 0, 0] / scene.cameras.K[:, 0, 0] - 1).abs().max())
    return {"views": views, "pairs": len(pred.pairs), "map": f"{width}x{height}", "device": device,
            "steps_run": n_steps, "init_s": round(init_s, 3), "step_s": round(step_s, 4),
            "clean_s": round(clean_s, 3), "total_300_s": round(init_s + 300 * step_s + clean_s, 1),
            "extrapolated": not full, "rel_rot_deg_max": round(err["rel_rot_deg_max"], 4),
            "rel_trans_dir_deg_max": round(err["rel_trans_dir_deg_max"], 4), "focal_rel_err_max": round(f_err, 5),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 2),
            "load_avg_1min": round(os.getloadavg()[0], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--views", default="3,6,12")
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--height", type=int, default=384)
    ap.add_argument("--steps", type=int, default=5, help="timed steps (CPU)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--full", action="store_true", help="run all 300 steps (default on CUDA)")
    ap.add_argument("--publish", action="store_true", help="write the results table and the README block")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])  # the first Adam imports torch._dynamo (~10 s): not timed
    full = args.full or args.device == "cuda"
    rows = []
    for v in [int(x) for x in args.views.split(",")]:
        rows.append(run_case(v, args.width, args.height, args.steps, args.warmup, args.device, full))
        print(json.dumps(rows[-1]), flush=True)
    if args.publish:
        publish_rows(rows, args.threads)


def publish_rows(rows: list[dict], threads: int) -> None:
    import platform

    from benchmarks.results_io import publish

    head = ("| views | pairs | maps | device | MST init s | s/step | cleaning s | 300 steps total s | steps run | "
            "rel. rot. err ° | transl. dir. err ° | focal err | peak RSS GB | load avg |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        total = f"{r['total_300_s']}" + (" (extrapolated)" if r["extrapolated"] else "")
        lines.append(f"| {r['views']} | {r['pairs']} | {r['map']} | {r['device']} | {r['init_s']} | {r['step_s']} | "
                     f"{r['clean_s']} | {total} | {r['steps_run']} | {r['rel_rot_deg_max']} | "
                     f"{r['rel_trans_dir_deg_max']} | {100 * r['focal_rel_err_max']:.2f} % | {r['peak_rss_gb']} | "
                     f"{r.get('load_avg_1min', '–')} |")
    md = ("\n".join(lines) + f"\n\nGlobal alignment of GT-generated pairwise maps (complete symmetrised graph, 0.5 % "
          f"noise, 5 % outliers) on {platform.machine()}, torch threads {threads}; pose and focal errors (max over "
          f"pairs / views) after the steps run (on CPU a few: mostly the MST initialisation's errors); the "
          f"machine's 1-minute load average is given because it was shared (a load above the core count slows "
          f"every timing). Produced by `python benchmarks/perf/global_alignment.py --publish`.")
    publish("global-alignment", md, rows)


if __name__ == "__main__":
    main()
