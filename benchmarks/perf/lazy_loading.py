"""Peak memory and time of preparing (and probing) 6 views of a 50-view scene at 512 px: lazy loading (only the
split's views decoded, resized on load) against decoding every view at full resolution first.

    python benchmarks/perf/lazy_loading.py [--dir DIR] [--size 2016x1512] [--views 50] [--no-probe]

The scene: the synthetic scene (50 views on its arc) rendered at 160x120 and upsampled to ``--size`` (the content
does not matter here, the pixel count does), written as a nerfstudio transforms.json with JPEG images (quality
95) and GT depth maps (.npy), so the probe can use the ``dataset`` initialiser (one Gaussian per 2x2 block). Each case runs in a fresh process; peak memory is the process's maximum resident set
size (``ru_maxrss``), including the interpreter and torch (~0.4 GB: the ``baseline`` row). Prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = ("baseline", "eager", "lazy", "probe")
SPLIT = ["split.n_train=3", "split.test=even", "split.n_test=3"]


def make_scene(root: Path, size: tuple[int, int], views: int) -> Path:
    import torch.nn.functional as F

    from feat2gs.data import make_synthetic_scene, write_transforms
    from feat2gs.io.images import write_image
    s = make_synthetic_scene(seed=0, num_views=views, width=160, height=120)
    w, h = size
    cams = s.cameras.resized(w, h)
    names = [f"IMG_{v:04d}.jpg" for v in range(views)]
    depths = F.interpolate(s.depths[:, None], size=(h, w), mode="nearest")[:, 0]
    write_transforms(root, cams, names, depths=depths)
    for v in range(views):
        big = F.interpolate(s.images[v:v + 1], size=(h, w), mode="bilinear", align_corners=False)[0].clamp(0, 1)
        write_image(root / "images" / names[v], big, quality=95)
    return root


def run_case(case: str, scene: Path) -> dict:
    import torch

    torch.set_num_threads(2)
    from feat2gs.config import load_config
    from feat2gs.data import load_scene
    from feat2gs.pipeline import open_working_scene, run_probe, split_from_config

    cfg = load_config([f"scene.path={scene}", "scene.long_side=512", *SPLIT, "init=dataset", "init.block=2",
                       "train.warmup_steps=2", "train.steps=2",
                       "eval.pose_steps=1", "eval.lpips=none", "eval.save_renders=false",
                       f"output.root={tempfile.mkdtemp()}"])
    t = time.perf_counter()
    info: dict = {}
    if case == "eager":  # every view decoded at full resolution, then the split's views resized
        full = load_scene(scene)
        split = split_from_config(cfg, full)
        used = full.subset(list(split.train) + list(split.test)).resized_long_side(512, int(cfg.scene.multiple))
        info = {"decoded_views": full.num_views, "size": [used.width, used.height]}
    elif case == "lazy":  # what prepare_scene does
        cat = open_working_scene(cfg)
        split = split_from_config(cfg, cat)
        used = cat.load(list(split.train) + list(split.test), 512, int(cfg.scene.multiple))
        info = {"decoded_views": used.num_views, "size": [used.width, used.height]}
    elif case == "probe":  # a whole (very short) probe run: prepare, features, train, evaluate, write
        run = run_probe(cfg)
        info = {"gaussians": run.metrics["scene"]["gaussians"], "size": run.metrics["scene"]["resolution"]}
    seconds = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"case": case, "seconds": round(seconds, 2), "peak_rss_mb": round(peak_mb), **info}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=None, help="where to write the scene (kept for reruns)")
    ap.add_argument("--size", default="2016x1512")
    ap.add_argument("--views", type=int, default=50)
    ap.add_argument("--no-probe", action="store_true")
    ap.add_argument("--case", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--scene", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    if args.case == "make":
        make_scene(Path(args.scene), (w, h), args.views)
        return
    if args.case:
        print(json.dumps(run_case(args.case, Path(args.scene))), flush=True)
        return
    # this process stays small (no torch): Linux keeps a parent's peak RSS in ru_maxrss across fork + exec
    scene = Path(args.dir or tempfile.mkdtemp()) / f"lazy_{args.views}views_{w}x{h}"
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    if not (scene / "transforms.json").is_file():
        subprocess.run([sys.executable, __file__, "--case", "make", "--scene", str(scene), "--size", args.size,
                        "--views", str(args.views)], env=env, check=True)
    for case in CASES:
        if case == "probe" and args.no_probe:
            continue
        out = subprocess.run([sys.executable, __file__, "--case", case, "--scene", str(scene)], env=env,
                             capture_output=True, text=True, check=True).stdout
        row = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
        row.update({"views": args.views, "image": f"{w}x{h}"})
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
