"""Helpers of the leaderboard tests: tiny probe configs, suite files, synthetic run records."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import yaml

from benchmarks.records import COMPLETE, RunIdentity, RunRecord, RunResult, ViewMetric

#: a probe run of about a second on the synthetic scene (64x48, 2 train / 2 test views, 20+15 steps)
TINY = ["scene.options.num_views=5", "scene.options.width=64", "scene.options.height=48", "scene.long_side=64",
        "split.n_train=2", "split.n_test=2", "init.block=2", "train.warmup_steps=20", "train.steps=15",
        "eval.pose_steps=3", "probe.sh_degree=1", "train.log_every=5", "eval.lpips=none"]
TINY_VIT = {"name": "random-vit", "overrides": ["backbone.arch_overrides.depth=2",
                                                "backbone.arch_overrides.embed_dim=64",
                                                "backbone.arch_overrides.num_heads=2"]}


def write_suite(path: Path, backbones=("iuvrgb",), modes="GT", seeds=(0,), scenes=("synthetic",),
                overrides=(), **extra) -> Path:
    doc = {"name": path.stem, "overrides": [*TINY, *overrides], "seeds": list(seeds), "modes": modes,
           "backbones": list(backbones), "scenes": list(scenes), **extra}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def fake_record(backbone: str, mode: str, scene: str, seed: int, psnr: Optional[float], dataset: str = "ds",
                distance: Optional[float] = None, status: str = COMPLETE, **result) -> RunRecord:
    ident = RunIdentity(scene=scene, dataset=dataset, split="even:2/2", backbone=backbone, mode=mode, init="dataset",
                        seed=seed, preset=None, config_hash=f"{backbone}-{mode}-{dataset}-{scene}-{seed}")
    res = RunResult(status=status, psnr=psnr, ssim=None if psnr is None else psnr / 40, distance=distance,
                    accuracy=distance, wall_s=1.5, peak_mem_mb=700.0, device="cpu (2 threads)",
                    versions={"torch": "x"}, warnings=["w"], git_dirty=False, **result)
    views = [ViewMetric(0, "v0.png", "psnr", psnr), ViewMetric(1, "v1.png", "psnr", psnr)] if psnr is not None else []
    return RunRecord(ident, res, views)
