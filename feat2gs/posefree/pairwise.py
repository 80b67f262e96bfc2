"""Pairwise point maps: the typed output of a two-view network over a scene graph, and the inference loop.

For an ordered pair (i, j) a DUSt3R-style network predicts, in the camera frame of view i (OpenCV axes, up to
a per-pair scale): ``pts_i`` the point of every pixel of view i, ``pts_j`` the point of every pixel of view j,
and per-pixel confidences ``conf_i`` / ``conf_j`` (>= 1 for DUSt3R's ``exp`` confidence mode).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import InputError
from .graph import make_pairs


@dataclass
class PairwisePrediction:
    """E pairs over V views at H x W: pts_i / pts_j (E, H, W, 3), conf_i / conf_j (E, H, W)."""

    pairs: list[tuple[int, int]]
    pts_i: torch.Tensor
    pts_j: torch.Tensor
    conf_i: torch.Tensor
    conf_j: torch.Tensor
    num_views: int
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pairs = [(int(i), int(j)) for i, j in self.pairs]
        E = len(self.pairs)
        if E == 0:
            raise InputError("pairs", "no image pairs")
        if self.pts_i.ndim != 4 or self.pts_i.shape[0] != E or self.pts_i.shape[-1] != 3:
            raise InputError("pairs.pts_i", f"expected ({E}, H, W, 3), got {tuple(self.pts_i.shape)}")
        H, W = self.pts_i.shape[1:3]
        for name, shape in (("pts_j", (E, H, W, 3)), ("conf_i", (E, H, W)), ("conf_j", (E, H, W))):
            if tuple(getattr(self, name).shape) != shape:
                raise InputError(f"pairs.{name}", f"expected {shape}, got {tuple(getattr(self, name).shape)}")
        for name in ("pts_i", "pts_j", "conf_i", "conf_j"):
            if not torch.isfinite(getattr(self, name)).all():
                raise InputError(f"pairs.{name}", "contains NaN or inf")
        for i, j in self.pairs:
            if i == j or not (0 <= i < self.num_views and 0 <= j < self.num_views):
                raise InputError("pairs", f"bad pair ({i}, {j}) for {self.num_views} views")

    @property
    def height(self) -> int:
        return int(self.pts_i.shape[1])

    @property
    def width(self) -> int:
        return int(self.pts_i.shape[2])


@torch.no_grad()
def pairwise_inference(model: "Any", images: torch.Tensor, pairs: list[tuple[int, int]],
                       batch_size: int = 8) -> PairwisePrediction:
    """Run a two-view model (``backbones.croco_stereo.StereoModel``) over ``pairs`` of ``images`` (V, 3, H, W) in
    [0, 1]: every image is encoded once (the encoder is siamese), then the pairs are decoded ``batch_size`` at a
    time. Returns the pairwise point maps and confidences at the input resolution."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise InputError("images", f"expected (V, 3, H, W), got {tuple(images.shape)}")
    V = images.shape[0]
    enc = model.encode(images)
    out: dict[str, list[torch.Tensor]] = {"pts_i": [], "pts_j": [], "conf_i": [], "conf_j": []}
    for s in range(0, len(pairs), max(1, int(batch_size))):
        chunk = pairs[s:s + batch_size]
        i = torch.tensor([p[0] for p in chunk])
        j = torch.tensor([p[1] for p in chunk])
        r1, r2 = model.decode(enc.select(i), enc.select(j))
        out["pts_i"].append(r1["pts3d"].float().cpu())
        out["conf_i"].append(r1["conf"].float().cpu())
        out["pts_j"].append(r2["pts3d"].float().cpu())
        out["conf_j"].append(r2["conf"].float().cpu())
    cat = {k: torch.cat(v) for k, v in out.items()}
    return PairwisePrediction(list(pairs), cat["pts_i"], cat["pts_j"], cat["conf_i"], cat["conf_j"], V)


def pairwise_from_ground_truth(scene, noise: float = 0.005, outlier_frac: float = 0.05, seed: int = 0,
                              graph: str = "complete") -> tuple["PairwisePrediction", torch.Tensor]:
    """For tests and benchmarks (a scene with GT depth): the pairwise maps a perfect DUSt3R would predict (view
    i's and view j's GT points in camera i's frame, times a random per-pair scale in [0.5, 2]), plus relative
    Gaussian noise (std ``noise`` x depth, per axis) and a fraction ``outlier_frac`` of outlier pixels per view
    displaced uniformly by up to the pair scale on each axis with confidence ~1 (weight ~0); inliers get
    confidences ~ U(3, 6); pixels without GT depth are outliers too. Seeded. Returns the prediction and the
    per-view outlier map (V, H, W)."""
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
