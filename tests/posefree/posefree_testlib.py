"""Pairwise point maps generated from a synthetic scene's ground truth, with known noise and outliers."""

from __future__ import annotations

import torch

from feat2gs.data.synthetic import make_synthetic_scene
from feat2gs.posefree.graph import make_pairs
from feat2gs.posefree.pairwise import PairwisePrediction


def synthetic_scene(num_views: int = 4, width: int = 64, height: int = 48, seed: int = 0):
    return make_synthetic_scene(seed=seed, num_views=num_views, width=width, height=height)


def gt_pairwise(scene, noise: float = 0.005, outlier_frac: float = 0.05, seed: int = 0,
                graph: str = "complete") -> tuple[PairwisePrediction, torch.Tensor]:
    """Pairwise maps as a perfect DUSt3R would predict them (view i's and view j's GT points in camera i's
    frame, times a random per-pair scale), plus relative Gaussian noise (std ``noise`` x depth) and a fraction
    of outlier pixels displaced by up to a metre with confidence ~1 (weight ~0). Inliers get confidence
    ~ U(3, 6). Pixels without GT depth are outliers too. Returns the prediction and the per-view outlier map."""
    g = torch.Generator().manual_seed(seed)
    cams = scene.cameras
    world = cams.unproject(scene.depths).double()  # (V, H, W, 3)
    V, H, W = scene.depths.shape
    outlier = (torch.rand(V, H, W, generator=g) < outlier_frac) | (scene.depths <= 0)
    pairs = make_pairs(V, graph)
    R = cams.viewmats[:, :3, :3].double()
    t = cams.viewmats[:, :3, 3].double()
    pts_i, pts_j, conf_i, conf_j = [], [], [], []
    for i, j in pairs:
        s = float(torch.empty(1).uniform_(0.5, 2.0, generator=g))
        maps, confs = [], []
        for v in (i, j):
            X = (world[v] @ R[i].T + t[i]) * s
            z = X[..., 2:3].abs()
            X = X + noise * z * torch.randn(H, W, 3, generator=g, dtype=torch.float64)
            bad = outlier[v]
            X[bad] = X[bad] + (torch.rand(int(bad.sum()), 3, generator=g, dtype=torch.float64) - 0.5) * 2 * s
            c = 3 + 3 * torch.rand(H, W, generator=g)
            c[bad] = 1.0 + 0.01 * torch.rand(int(bad.sum()), generator=g)
            maps.append(X.float())
            confs.append(c)
        pts_i.append(maps[0]), pts_j.append(maps[1]), conf_i.append(confs[0]), conf_j.append(confs[1])
    pred = PairwisePrediction(pairs, torch.stack(pts_i), torch.stack(pts_j), torch.stack(conf_i),
                              torch.stack(conf_j), V)
    return pred, outlier
