"""Global alignment of pairwise point maps: cameras + one point per pixel, written here (after DUSt3R's
``PointCloudOptimizer``, not a copy of it).

Unknowns: per view a depth map (log-depth per pixel), a camera-to-world pose (rotation + centre) and a focal
length (pinhole, square pixels, principal point at the image centre; one focal for all views with
``shared_focal``, or a known fixed focal); per pair e = (i, j) a similarity ``x -> s_e R_e x + t_e`` that takes
the pair's frame (camera i, the network's scale) to the world. The loss is confidence-weighted:

    L = 1/E sum_e [ mean_p w_i(p) || X_i(p) - S_e(pts_i(p)) ||  +  mean_p w_j(p) || X_j(p) - S_e(pts_j(p)) || ]

with X_v(p) the world point of pixel p of view v (its depth along its ray), ``w = log(conf)`` (``conf_mode``
``"log"``; DUSt3R's confidences are >= 1) and the plain Euclidean distance (not squared: robust to the few
confidently wrong pixels). The scale gauge is fixed by normalising the pair scales to a geometric mean of 1
(the world keeps the network's scale); the pose gauge is free (it does not change the loss).

Initialisation (``init="mst"``): a maximum spanning tree of the pairs (edge score: the product of the
pair's mean confidences) is grown from its best pair; each new view's points are chained into the world by a
confidence-weighted Umeyama similarity fitted on the view already placed. Each view's focal comes from its
own camera-frame points (closed-form least squares then a few L1 reweightings of ``f (x/z, y/z) = uv - c``,
clamped to [0.5, 3.5] x the focal of a 60-degree field of view, as DUSt3R),
its depth from their z, its pose from a Umeyama fit of its camera-frame points to its world points, and
each pair's similarity from a Umeyama fit of the pair's two maps to the initial world points.

Optimisation: Adam (betas 0.9, 0.9) on all unknowns, ``steps`` (300) with ``lr`` (0.01) decayed linearly to
``lr_min`` (DUSt3R's reference schedule). Rotations are updated as axis-angle corrections of the initial
rotations; translations in units of the initial median depth, so the learning rate is scale-free.

Cleaning (``clean_points``): a pixel of view i is dropped when its point projects into another view j in
front of j's depth there (by more than ``clean_tol`` relative) and j is more confident at that pixel -- the
point would occlude a surface that view j sees confidently (DUSt3R's ``clean_pointcloud``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Optional

import torch

from ..errors import InputError
from ..geometry.pose import so3_exp
from ..geometry.umeyama import umeyama
from ..scene import Cameras
from .graph import check_connected
from .pairwise import PairwisePrediction


@dataclass
class AlignmentOptions:
    steps: int = 300
    lr: float = 0.01
    lr_min: float = 1e-6
    schedule: str = "linear"  # linear | cosine | constant
    shared_focal: bool = False
    focal: Optional[float] = None  # known focal in pixels of the point maps: fixed, not optimised
    conf_mode: str = "log"  # log: w = log(conf) (conf >= 1); raw: w = conf
    clean: bool = True
    clean_tol: float = 0.001
    min_depth: float = 1e-6

    def validate(self) -> None:
        if self.steps < 0:
            raise InputError("alignment.steps", f"must be >= 0, got {self.steps}")
        if not self.lr > 0:
            raise InputError("alignment.lr", f"must be > 0, got {self.lr}")
        if self.schedule not in ("linear", "cosine", "constant"):
            raise InputError("alignment.schedule", f"unknown schedule {self.schedule!r}")
        if self.conf_mode not in ("log", "raw"):
            raise InputError("alignment.conf_mode", f"unknown conf_mode {self.conf_mode!r}")
        if self.focal is not None and not self.focal > 0:
            raise InputError("alignment.focal", f"must be > 0, got {self.focal}")


@dataclass
class AlignmentResult:
    """cameras (pixel K at the maps' resolution, world-to-camera viewmats); depth / confidence (V, H, W);
    points (V, H, W, 3) world; valid (V, H, W) after cleaning; pair similarities (scale, R, t) per pair."""

    cameras: Cameras
    depth: torch.Tensor
    points: torch.Tensor
    confidence: torch.Tensor
    valid: torch.Tensor
    pair_scale: torch.Tensor
    pair_rotation: torch.Tensor
    pair_translation: torch.Tensor
    history: list[float] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------- helpers
def pixel_offsets(H: int, W: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """(H, W, 2) pixel-centre offsets from the image centre: (j + 0.5 - W/2, i + 0.5 - H/2)."""
    ys, xs = torch.meshgrid(torch.arange(H, dtype=dtype, device=device) + 0.5 - H / 2,
                            torch.arange(W, dtype=dtype, device=device) + 0.5 - W / 2, indexing="ij")
    return torch.stack([xs, ys], -1)


def estimate_focal(points: torch.Tensor, weights: Optional[torch.Tensor] = None, iters: int = 10) -> torch.Tensor:
    """Focal (pixels) of camera-frame point maps (B, H, W, 3), principal point at the centre: minimises
    sum_p w_p |f (x/z, y/z) - (u - c)| (least squares, then ``iters`` L1 reweightings). Points with z <= 0 or
    zero weight are ignored. Returns (B,)."""
    B, H, W, _ = points.shape
    p = pixel_offsets(H, W, torch.float64, points.device).reshape(1, -1, 2)
    pts = points.double().reshape(B, -1, 3)
    z = pts[..., 2]
    w = torch.ones_like(z) if weights is None else weights.double().reshape(B, -1)
    w = torch.where(z > 1e-12, w, torch.zeros_like(w))
    q = pts[..., :2] / torch.where(z > 1e-12, z, torch.ones_like(z))[..., None]
    ww = w
    f = None
    for _ in range(iters + 1):
        num = (ww[..., None] * q * p).sum((1, 2))
        den = (ww[..., None] * q * q).sum((1, 2)).clamp_min(1e-30)
        f = num / den
        r = (f[:, None, None] * q - p).norm(dim=-1)
        ww = w / r.clamp_min(1e-2)  # L1 reweighting (pixels)
    # DUSt3R's bounds: [0.5, 3.5] x the focal of a 60-degree field of view over the long side (a degenerate
    # map -- e.g. every point behind the camera -- gets the lower bound instead of a non-positive focal)
    base = max(H, W) / (2 * math.tan(math.radians(30)))
    f = torch.where(torch.isfinite(f), f, torch.zeros_like(f)).clamp(0.5 * base, 3.5 * base)
    return f.to(points.dtype)


def camera_points(depth: torch.Tensor, focal: torch.Tensor) -> torch.Tensor:
    """(V, H, W, 3) camera-frame points of z-depth maps (V, H, W), focal (V,), principal point at the centre."""
    V, H, W = depth.shape
    p = pixel_offsets(H, W, depth.dtype, depth.device)
    xy = p[None] / focal.reshape(V, 1, 1, 1) * depth[..., None]
    return torch.cat([xy, depth[..., None]], -1)


def _weights(conf: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "log":
        return conf.clamp_min(1.0).log()
    return conf.clamp_min(0.0)


def _sim_fit(src: torch.Tensor, dst: torch.Tensor, w: torch.Tensor, max_points: int = 200_000):
    """Weighted Umeyama on (N, 3) points with positive weight (deterministically thinned to ``max_points``)."""
    keep = w > 0
    src, dst, w = src[keep], dst[keep], w[keep]
    if src.shape[0] > max_points:
        step = math.ceil(src.shape[0] / max_points)
        src, dst, w = src[::step], dst[::step], w[::step]
    return umeyama(src, dst, w)


def _schedule(kind: str, t: float, lr: float, lr_min: float) -> float:
    if kind == "linear":
        return lr + (lr_min - lr) * t
    if kind == "cosine":
        return lr_min + (lr - lr_min) * 0.5 * (1 + math.cos(math.pi * t))
    return lr


# ------------------------------------------------------------------------------------------------- init
def _mst_world_points(pred: PairwisePrediction, w_i: torch.Tensor, w_j: torch.Tensor):
    """World points (V, H, W, 3) of every view, chained along a maximum spanning tree of the pairs."""
    V = pred.num_views
    score = (pred.conf_i.flatten(1).mean(1) * pred.conf_j.flatten(1).mean(1)).tolist()
    best: dict[tuple[int, int], float] = {}
    for e, (i, j) in enumerate(pred.pairs):
        key = (min(i, j), max(i, j))
        best[key] = max(best.get(key, -math.inf), score[e])
    e0 = max(range(len(pred.pairs)), key=lambda e: score[e])
    i0, j0 = pred.pairs[e0]
    world = {i0: pred.pts_i[e0].double(), j0: pred.pts_j[e0].double()}
    order = [(i0, j0)]
    while len(world) < V:
        cands = [(s, a, b) for (a, b), s in best.items() if (a in world) != (b in world)]
        if not cands:
            raise InputError("scene_graph", "the pairs do not connect all views")
        _, a, b = max(cands)
        if b in world:
            a, b = b, a  # a is placed, b is new
        # prefer the pair seen from the placed view (its frame is a's camera), else the reverse one
        fwd = [e for e, p in enumerate(pred.pairs) if p == (a, b)]
        if fwd:
            e = max(fwd, key=lambda k: score[k])
            sim = _sim_fit(pred.pts_i[e].reshape(-1, 3).double(), world[a].reshape(-1, 3), w_i[e].reshape(-1).double())
            new = pred.pts_j[e]
        else:
            e = max((k for k, p in enumerate(pred.pairs) if p == (b, a)), key=lambda k: score[k])
            sim = _sim_fit(pred.pts_j[e].reshape(-1, 3).double(), world[a].reshape(-1, 3), w_j[e].reshape(-1).double())
            new = pred.pts_i[e]
        s, R, t = sim
        world[b] = s * new.double() @ R.T + t
        order.append((a, b))
    return torch.stack([world[v] for v in range(V)]), order


# ------------------------------------------------------------------------------------------------- main
def global_alignment(pred: PairwisePrediction, options: Optional[AlignmentOptions] = None,
                     device: str = "cpu") -> AlignmentResult:
    """Cameras + per-pixel world points of the ``pred.num_views`` views from pairwise point maps (module doc)."""
    opts = options or AlignmentOptions()
    opts.validate()
    V, H, W, E = pred.num_views, pred.height, pred.width, len(pred.pairs)
    check_connected(V, pred.pairs)
    firsts = {i for i, _ in pred.pairs}
    if len(firsts) < V:
        missing = sorted(set(range(V)) - firsts)
        raise InputError("scene_graph", f"views {missing} are never the first view of a pair (symmetrise the graph)")
    t0 = time.perf_counter()
    w_i, w_j = _weights(pred.conf_i, opts.conf_mode), _weights(pred.conf_j, opts.conf_mode)
    score = (pred.conf_i.flatten(1).mean(1) * pred.conf_j.flatten(1).mean(1))

    # ---- initialisation
    world, order = _mst_world_points(pred, w_i, w_j)
    own = [max((e for e, p in enumerate(pred.pairs) if p[0] == v), key=lambda e: float(score[e])) for v in range(V)]
    cam_pts = torch.stack([pred.pts_i[e] for e in own]).double()
    cam_w = torch.stack([w_i[e] for e in own]).double()
    if opts.focal is not None:
        focal0 = torch.full((V,), float(opts.focal), dtype=torch.float64)
    else:
        focal0 = estimate_focal(cam_pts, cam_w)
        if opts.shared_focal:
            focal0 = focal0.mean().expand(V).clone()
    depth0 = cam_pts[..., 2].clamp_min(opts.min_depth)
    R0, C0 = [], []
    for v in range(V):
        rays = camera_points(depth0[v:v + 1], focal0[v:v + 1])[0]
        s, R, t = _sim_fit(rays.reshape(-1, 3), world[v].reshape(-1, 3), cam_w[v].reshape(-1))
        depth0[v] = depth0[v] * s
        R0.append(R)
        C0.append(t)
    R0, C0 = torch.stack(R0), torch.stack(C0)
    X0 = torch.einsum("vij,vhwj->vhwi", R0, camera_points(depth0, focal0)) + C0[:, None, None]
    Re0, Te0, Se0 = [], [], []
    for e, (i, j) in enumerate(pred.pairs):
        src = torch.cat([pred.pts_i[e].reshape(-1, 3), pred.pts_j[e].reshape(-1, 3)]).double()
        dst = torch.cat([X0[i].reshape(-1, 3), X0[j].reshape(-1, 3)])
        s, R, t = _sim_fit(src, dst, torch.cat([w_i[e].reshape(-1), w_j[e].reshape(-1)]).double())
        Se0.append(s)
        Re0.append(R)
        Te0.append(t)
    Se0, Re0, Te0 = torch.stack(Se0), torch.stack(Re0), torch.stack(Te0)
    g = Se0.log().mean().exp()  # scale gauge: pair scales' geometric mean -> 1
    depth0, C0, Te0, Se0 = depth0 / g, C0 / g, Te0 / g, Se0 / g
    sref = float(depth0.median())

    # ---- parameters (float32 on the device)
    dev, f32 = torch.device(device), torch.float32
    P = lambda t: torch.nn.Parameter(t.to(dev, f32).clone())  # noqa: E731
    log_depth = P(depth0.log())
    rot_v, cen_v = P(torch.zeros(V, 3)), P(C0 / sref)
    n_f = 1 if opts.shared_focal else V
    log_f = P(focal0[:n_f].log())
    rot_e, tr_e, log_s = P(torch.zeros(E, 3)), P(Te0 / sref), P(Se0.log())
    R0d, Re0d = R0.to(dev, f32), Re0.to(dev, f32)
    pts_i, pts_j = pred.pts_i.to(dev, f32), pred.pts_j.to(dev, f32)
    wi, wj = w_i.to(dev, f32), w_j.to(dev, f32)
    ii = torch.tensor([p[0] for p in pred.pairs], device=dev)
    jj = torch.tensor([p[1] for p in pred.pairs], device=dev)
    offs = pixel_offsets(H, W, f32, dev)

    def world_points():
        f = log_f.exp().expand(V)
        d = log_depth.exp()
        cam = torch.cat([offs[None] / f.reshape(V, 1, 1, 1) * d[..., None], d[..., None]], -1)
        R = so3_exp(rot_v) @ R0d
        return torch.einsum("vij,vhwj->vhwi", R, cam) + (cen_v * sref)[:, None, None], R, f, d

    def pair_transform():
        s = (log_s - log_s.mean()).exp()
        R = so3_exp(rot_e) @ Re0d
        return s, R, tr_e * sref

    def loss_fn():
        X, *_ = world_points()
        s, R, t = pair_transform()
        ai = s[:, None, None, None] * torch.einsum("eij,ehwj->ehwi", R, pts_i) + t[:, None, None]
        aj = s[:, None, None, None] * torch.einsum("eij,ehwj->ehwi", R, pts_j) + t[:, None, None]
        li = (wi * (X[ii] - ai).norm(dim=-1)).mean((1, 2))
        lj = (wj * (X[jj] - aj).norm(dim=-1)).mean((1, 2))
        return (li + lj).mean()

    params = [log_depth, rot_v, cen_v, rot_e, tr_e, log_s] + ([] if opts.focal is not None else [log_f])
    optim = torch.optim.Adam(params, lr=opts.lr, betas=(0.9, 0.9))
    history = []
    with torch.no_grad():
        history.append(float(loss_fn()))
    for step in range(opts.steps):
        lr = _schedule(opts.schedule, step / max(1, opts.steps), opts.lr, opts.lr_min)
        for grp in optim.param_groups:
            grp["lr"] = lr
        optim.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        optim.step()
        history.append(float(loss.detach()))

    with torch.no_grad():
        X, Rv, f, d = world_points()
        s, Re, te = pair_transform()
    X, Rv, f, d = X.cpu(), Rv.cpu(), f.cpu(), d.cpu()
    C = (cen_v.detach() * sref).cpu()
    c2w = torch.eye(4).repeat(V, 1, 1)
    c2w[:, :3, :3], c2w[:, :3, 3] = Rv, C
    K = torch.zeros(V, 3, 3)
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = f, f, W / 2, H / 2, 1.0
    cameras = Cameras(K, torch.linalg.inv(c2w.double()).float(), W, H)
    # per-view confidence: the best confidence any pair gives the pixel
    conf = torch.zeros(V, H, W)
    for e, (i, j) in enumerate(pred.pairs):
        conf[i] = torch.maximum(conf[i], pred.conf_i[e])
        conf[j] = torch.maximum(conf[j], pred.conf_j[e])
    valid = d > 0
    if opts.clean:
        valid &= ~occluding_points(cameras, d, X, conf, opts.clean_tol)
    return AlignmentResult(cameras, d, X, conf, valid, s.cpu(), Re.cpu(), te.cpu(), history,
                           meta={"steps": opts.steps, "lr": opts.lr, "schedule": opts.schedule,
                                 "shared_focal": opts.shared_focal, "mst_order": order, "pairs": len(pred.pairs),
                                 "seconds": time.perf_counter() - t0, "initial_loss": history[0],
                                 "final_loss": history[-1], "cleaned_fraction": float(1 - valid.float().mean())})


def occluding_points(cameras: Cameras, depth: torch.Tensor, points: torch.Tensor, conf: torch.Tensor,
                     tol: float = 0.001) -> torch.Tensor:
    """(V, H, W) bool: pixels whose point lies in front of another view's depth (by more than ``tol``
    relative) where that view is more confident -- DUSt3R's point-cloud cleaning."""
    V, H, W = depth.shape
    bad = torch.zeros(V, H, W, dtype=torch.bool)
    for i in range(V):
        P = points[i].reshape(-1, 3)
        uv, z = cameras.project(P)
        for j in range(V):
            if j == i:
                continue
            u, v = uv[j, :, 0].floor().long(), uv[j, :, 1].floor().long()
            inside = (z[j] > 0) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
            uc, vc = u.clamp(0, W - 1), v.clamp(0, H - 1)
            dj, cj = depth[j, vc, uc], conf[j, vc, uc]
            b = inside & (z[j] < (1 - tol) * dj) & (conf[i].reshape(-1) < cj)
            bad[i] |= b.reshape(H, W)
    return bad
