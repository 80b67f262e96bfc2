"""Time of one training step (``ProbeTrainer.step``: readout heads + render + loss + backward + Adam) and one
warm-up step on the demo scene, per backbone and mode, on this machine's CPU (or CUDA when present). One JSON
line per case.

    python benchmarks/perf/train_step.py [--steps 10] [key=value overrides, e.g. init.block=2]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: no spinning OpenMP threads

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from feat2gs.config import load_config  # noqa: E402
from feat2gs.features import prepare_features  # noqa: E402
from feat2gs.device import resolve_device  # noqa: E402
from feat2gs.pipeline import prepare_scene  # noqa: E402
from feat2gs.render import get_renderer  # noqa: E402
from feat2gs.train import ProbeTrainer  # noqa: E402
from probes.readout import Readout  # noqa: E402


def timed(fn, steps: int) -> float:
    for _ in range(3):
        fn()
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--backbones", default="iuvrgb,random-vit")
    args = ap.parse_args()
    cfg = load_config(args.overrides, preset="demo")
    device = resolve_device(str(cfg.device))
    prep = prepare_scene(cfg)
    renderer = get_renderer(str(cfg.render.backend))
    images = prep.train.images.to(device)
    for name in args.backbones.split(","):
        cfg.backbone.name = name
        feats = prepare_features(cfg, prep, device).features
        for mode in "GTA":
            readout = Readout(mode, feats.dim, prep.init_gaussians, hidden=int(cfg.probe.hidden)).to(device)
            # the trainer's own step (schedules, one Adam over heads, free parameters and poses)
            trainer = ProbeTrainer(readout, feats, images, prep.train.cameras, renderer, cfg.train, prep.extent,
                                   int(cfg.seed))
            counter = {"photo": 0, "warmup": 0}

            def step(phase):
                trainer.step(phase, counter[phase])
                counter[phase] += 1

            tp = timed(lambda: step("photo"), args.steps)
            tw = timed(lambda: step("warmup"), args.steps)
            print(json.dumps({"backbone": name, "mode": mode, "gaussians": len(prep.init_gaussians),
                              "width": prep.train.width, "height": prep.train.height, "renderer": renderer.name,
                              "photometric_ms": round(tp * 1000, 1), "warmup_ms": round(tw * 1000, 1),
                              "photometric_steps_per_s": round(1 / tp, 2), "threads": torch.get_num_threads()}),
                  flush=True)


if __name__ == "__main__":
    main()
