"""Helpers of the feature-stage tests: a tiny synthetic scene config, tiny backbones and an extract counter."""

from __future__ import annotations

import torch

import backbones  # noqa: F401  (registers every family)
from backbones import build_backbone
from backbones.tiny import tiny_overrides

#: a 5-view 64x48 synthetic scene, 2 train views, a few training steps (the probe's code paths, fast)
TINY_SCENE = ["scene.options.num_views=5", "scene.options.width=64", "scene.options.height=48",
              "scene.long_side=64", "split.n_train=2", "split.n_test=1", "init.block=2"]
TINY_TRAIN = ["train.warmup_steps=1", "train.steps=1", "eval.pose_steps=0", "probe.sh_degree=0",
              "train.log_every=5", "eval.lpips=none", "eval.save_renders=false", "probe.hidden=16"]


def tiny_backbone(name: str, **kw):
    return build_backbone(name, arch_overrides=tiny_overrides(name), **kw)


def random_images(n: int, h: int = 48, w: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g)


class CountingExtract:
    """Wraps a backbone's ``extract`` and records the number of views of every call."""

    def __init__(self, backbone):
        self.backbone = backbone
        self.calls: list[int] = []
        self._extract = backbone.extract
        backbone.extract = self

    def __call__(self, images):
        self.calls.append(int(images.shape[0]))
        return self._extract(images)
