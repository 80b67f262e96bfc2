"""Pairwise point maps generated from a synthetic scene's ground truth, with known noise and outliers."""

from __future__ import annotations

from feat2gs.data.synthetic import make_synthetic_scene
from feat2gs.posefree.pairwise import pairwise_from_ground_truth


def synthetic_scene(num_views: int = 4, width: int = 64, height: int = 48, seed: int = 0):
    return make_synthetic_scene(seed=seed, num_views=num_views, width=width, height=height)


def gt_pairwise(scene, **kw):
    return pairwise_from_ground_truth(scene, **kw)
