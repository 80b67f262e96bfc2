"""``init=mvs``: weight-free plane-sweep multi-view stereo on the (few) posed train views.

For real scenes without depth. Every train view is a reference view once; all of them are processed in one
batch (the (reference, source) pairs are stacked and the depth planes are swept in chunks that fit a
memory budget). Design:

1. **Depth hypotheses** per reference view: ``num_planes`` fronto-parallel planes uniform in inverse depth
   over [near, far]. The range comes from ``near``/``far`` options, else ``scene.depth_range`` (e.g. LLFF
   bounds), else percentiles of the SfM points seen by the view (``scene.sparse_points``), else a camera-only
   heuristic (see ``camera_depth_range``).
2. **Matching cost**: each source view (the ``max_sources`` nearest train cameras) is warped onto every
   plane by the plane-induced homography with ``grid_sample`` (bilinear); photo-consistency is the zero-mean
   normalised cross-correlation (ZNCC) of grey levels over a ``window`` x ``window`` box (separable box
   filters). Warps falling outside the source image score -1.
3. **Aggregation over sources**, robust to occlusion: the mean of the ``top_k`` best source scores per plane
   (default: the better half, ``ceil(S/2)``, so one occluded source cannot veto a correct depth).
4. **Winner-take-all** over planes, refined below the plane spacing by a parabola through the best score
   and its two neighbours (in inverse-depth index space).
5. **Filtering**: a pixel is kept when (a) its aggregated ZNCC >= ``min_score``; (b) the reference window's
   grey-level std >= ``min_texture``; (c) the winner is not the first or last plane (the surface may lie
   outside the range); (d) it is geometrically consistent with at least ``min_consistent`` other views:
   its 3D point, projected into the other view, meets that view's (valid, bilinearly sampled) depth; that
   point back-projected and reprojected into the reference lands within ``max_reproj_px`` pixels of the
   pixel and within a relative depth difference ``max_rel_depth`` (the forward-backward check of MVSNet);
   (e) it lies inside ``scene.masks`` when the scene has masks and ``use_masks``.

Everything is deterministic (no random sampling); ``seed`` is accepted for a uniform initialiser interface
and recorded in ``meta``. Works on CPU; cost grows with views x sources x planes x pixels.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..scene import Cameras, Scene
from .base import INITIALISERS, Initialiser, PointInit
from ..geometry.fill import fill_depth
from .dataset import point_init_from_depth

_GREY = (0.299, 0.587, 0.114)


# --------------------------------------------------------------------------------------------- depth range
def camera_depth_range(cameras: Cameras, max_disparity_fraction: float = 0.33,
                       far_over_near: float = 100.0) -> torch.Tensor:
    """A (V, 2) [near, far] guess from camera geometry alone.

    Convergent rigs (optical axes meeting at a well-defined point, like object-centric captures): the
    least-squares point closest to all optical axes is taken as the scene centre; with z its depth in a view,
    the range is [z/2, 2z]. Otherwise (forward-facing rigs, nearly parallel axes): near is the depth at which
    the widest baseline B gives a disparity of ``max_disparity_fraction`` of the image width
    (near = f B / (fraction * W)), and far = ``far_over_near`` * near.
    """
    V = len(cameras)
    C = cameras.centers.double()
    R = cameras.viewmats[:, :3, :3].double()
    axes = R[:, 2]  # optical axes in world coordinates (third row of world-to-camera R)
    if V >= 2:
        P = torch.eye(3, dtype=torch.float64) - axes[:, :, None] * axes[:, None, :]  # (V, 3, 3) projectors
        A = P.sum(0)
        b = (P @ C[:, :, None]).sum(0)[:, 0]
        ev = torch.linalg.eigvalsh(A)
        if ev[0] > 1e-2 * ev[-1]:
            X = torch.linalg.solve(A, b)
            z = ((X[None] - C) * axes).sum(-1)
            spread = (C - C.mean(0)).norm(dim=-1).max()
            if (z > 0.5 * spread).all():
                return torch.stack([z / 2, z * 2], -1).float()
        baseline = float(torch.cdist(C, C).max())
    else:
        baseline = 0.0
    f = float(cameras.K[:, 0, 0].mean())
    if baseline <= 0:
        raise InputError("init.options (init=mvs)", "cannot guess a depth range: the train cameras share one centre; "
                                     "give init.options.near and init.options.far")
    near = f * baseline / (max_disparity_fraction * cameras.width)
    return torch.tensor([[near, near * far_over_near]] * V, dtype=torch.float32)


def sparse_depth_range(cameras: Cameras, points: torch.Tensor, lo: float = 1.0, hi: float = 99.0,
                       margin: float = 0.25, min_points: int = 20) -> Optional[torch.Tensor]:
    """(V, 2) [near, far] from the percentiles of the depths of the SfM points each view sees.

    near = p_lo / (1 + margin), far = p_hi * (1 + margin). None when some view sees fewer than ``min_points``.
    """
    uv, z = cameras.project(points.float())
    u, v = uv[..., 0], uv[..., 1]
    inside = (z > 0) & (u >= 0) & (u <= cameras.width) & (v >= 0) & (v <= cameras.height)
    out = []
    for v in range(len(cameras)):
        zv = z[v][inside[v]]
        if zv.numel() < min_points:
            return None
        q = torch.quantile(zv.double(), torch.tensor([lo / 100, hi / 100], dtype=torch.float64))
        out.append(torch.stack([q[0] / (1 + margin), q[1] * (1 + margin)]))
    return torch.stack(out).float()


def mvs_depth_range(train: Scene, near: Optional[float] = None,
                    far: Optional[float] = None) -> tuple[torch.Tensor, str]:
    """Per-view [near, far] (V, 2) and where it came from ("options", "depth_range", "sparse_points", "cameras")."""
    V = train.num_views
    if near is not None or far is not None:
        if near is None or far is None:
            raise InputError("init.options", "give both near and far (init=mvs), or neither")
        rng, src = torch.tensor([[float(near), float(far)]] * V), "options"
    elif train.depth_range is not None:
        rng, src = train.depth_range.float().clone(), "depth_range"
    else:
        rng, src = None, ""
        if train.sparse_points is not None and train.sparse_points.shape[0] > 0:
            rng, src = sparse_depth_range(train.cameras, train.sparse_points), "sparse_points"
        if rng is None:
            rng, src = camera_depth_range(train.cameras), "cameras"
    if not ((rng[:, 0] > 0) & (rng[:, 1] > rng[:, 0])).all():
        raise InputError(f"init.options (init=mvs, {train.name}.{src})", f"need 0 < near < far per view, got {rng.tolist()}")
    return rng, src


# --------------------------------------------------------------------------------------------- helpers
def _running_sum(x: torch.Tensor, window: int, dim: int) -> torch.Tensor:
    """Sum over a centred ``window`` along ``dim``, cut at the ends (cumsum differences, no padding copy)."""
    r = window // 2
    n = x.shape[dim]
    c = x.cumsum(dim)
    out = torch.empty_like(c)
    sl = lambda a, b: (slice(None),) * (dim % x.ndim) + (slice(a, b),)  # noqa: E731
    # Leading window ends before the data start: sum of the first j + r + 1 values.
    out[sl(0, r + 1)] = c[sl(r, 2 * r + 1)]
    out[sl(r + 1, n - r)] = c[sl(2 * r + 1, n)] - c[sl(0, n - 2 * r - 1)]
    out[sl(n - r, n)] = c[sl(n - 1, n)] - c[sl(n - 2 * r - 1, n - r - 1)]
    return out


def box_filter(x: torch.Tensor, window: int) -> torch.Tensor:
    """Mean over a ``window`` x ``window`` box around each pixel of (..., H, W), the box cut at the borders.

    Separable running sums (cumsum differences): the cost does not grow with the window. Each 1D running sum
    spans one image row or column, so float32 rounding stays ~1e-7 x that length for inputs of order 1.
    Needs H, W >= window.
    """
    H, W = x.shape[-2:]
    if min(H, W) < window:
        raise InputError("init.options.window (init=mvs)", f"window {window} is larger than the {W}x{H} image")
    return _running_sum(_running_sum(x, window, -1), window, -2) / _box_counts(H, W, window)


@functools.lru_cache(maxsize=16)
def _box_counts(height: int, width: int, window: int) -> torch.Tensor:
    """(H, W) number of in-image pixels in each pixel's box."""
    r = window // 2
    count = lambda n: (torch.arange(n)[:, None] - torch.arange(n)[None]).abs().le(r).sum(1).float()  # noqa: E731
    return count(height)[:, None] * count(width)[None]


def pixel_grid(height: int, width: int) -> torch.Tensor:
    """Homogeneous pixel centres (3, H*W): (j + 0.5, i + 0.5, 1), row-major."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32) + 0.5,
                            torch.arange(width, dtype=torch.float32) + 0.5, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1), torch.ones(height * width)])


def to_grid(u: torch.Tensor, v: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Pixel coordinates (pixel centres at +0.5) -> grid_sample coordinates (align_corners=False)."""
    return torch.stack([2 * u / width - 1, 2 * v / height - 1], -1)


def nearest_sources(cameras: Cameras, max_sources: int) -> torch.Tensor:
    """(V, S) indices of the S = min(max_sources, V-1) train cameras nearest to each view (centre distance)."""
    C = cameras.centers
    d = torch.cdist(C, C)
    d.fill_diagonal_(float("inf"))
    S = min(max_sources, len(cameras) - 1)
    return d.argsort(dim=1)[:, :S]


# --------------------------------------------------------------------------------------------- dense stages
def sgm_aggregate(cost: torch.Tensor, grey: torch.Tensor, p1: float, p2: float,
                  edge_scale: float = 10.0) -> torch.Tensor:
    """Semi-global matching (Hirschmueller, PAMI 2008) over a cost volume (V, D, H, W): the sum over the four
    axis-aligned scan directions r of L_r(p, d) = C(p, d) + min(L_r(p-r, d), L_r(p-r, d+-1) + p1,
    min_k L_r(p-r, k) + P2(p)) - min_k L_r(p-r, k), with P2 = max(p1, p2 / (1 + edge_scale |I(p) - I(p-r)|))
    (smaller jump penalties across grey-level edges). ``grey`` (V, H, W) in [0, 1]. Vectorised over views,
    planes and the scanline's orthogonal axis; the scan itself is a loop over rows / columns."""
    V, D, H, W = cost.shape
    total = torch.zeros_like(cost)
    for dim, n in ((3, W), (2, H)):
        for reverse in (False, True):
            order = range(n - 1, -1, -1) if reverse else range(n)
            prev = None
            g_prev = None
            for x in order:
                c = cost.select(dim, x)  # (V, D, other)
                g = grey.select(dim - 1, x)  # (V, other)
                if prev is None:
                    L = c
                else:
                    m = prev.amin(1, keepdim=True)
                    P2 = (p2 / (1 + edge_scale * (g - g_prev).abs())).clamp_min(p1)[:, None]
                    up = torch.cat([prev[:, 1:], prev[:, -1:] + 1e9], 1) + p1
                    down = torch.cat([prev[:, :1] + 1e9, prev[:, :-1]], 1) + p1
                    L = c + torch.minimum(torch.minimum(prev, torch.minimum(up, down)), m + P2) - m
                total.select(dim, x).add_(L)
                prev, g_prev = L, g
    return total


@dataclass
class DenseDepth:
    """Dense per-view depth (V, H, W) with the pixels that passed every filter and their confidence."""

    depth: torch.Tensor
    confident: torch.Tensor  # bool
    confidence: torch.Tensor  # float in [0, 1]: the match score of confident pixels, 0 elsewhere
    meta: dict


@dataclass
class SweepResult:
    """Per-view winner-take-all output of the plane sweep (all (V, H, W))."""

    depth: torch.Tensor  # sub-plane refined z-depth
    score: torch.Tensor  # aggregated ZNCC of the winning plane
    plane: torch.Tensor  # index of the winning plane
    texture: torch.Tensor  # grey-level std of the reference window


# --------------------------------------------------------------------------------------------- initialiser
@INITIALISERS.register("mvs")
class MVSInit(Initialiser):
    """Known poses + plane-sweep MVS (ZNCC, top-k source aggregation, WTA, consistency filtering).

    Options (defaults in brackets):
      num_planes [64]: depth hypotheses per view, uniform in inverse depth over [near, far].
      window [7]: side of the square ZNCC window in pixels (odd).
      max_sources [4]: source views per reference (the nearest train cameras).
      top_k [None -> ceil(S/2)]: number of best source scores averaged per plane.
      min_score [0.5]: minimum aggregated ZNCC of the winning plane.
      min_texture [0.01]: minimum grey-level std (images in [0, 1]) in the reference window.
      max_rel_depth [0.02]: geometric consistency: maximum relative depth difference after reprojection
        (0.01 drops a quarter of the valid pixels of LLFF fern at 256 px for no gain in accuracy).
      max_reproj_px [1.0]: geometric consistency: maximum forward-backward reprojection error in pixels.
      min_consistent [1]: number of other views a pixel must be consistent with (0 disables the check).
      near, far [None]: override the depth range (scene units) for every view.
      use_masks [True]: keep only pixels inside ``scene.masks`` when present.
      chunk_elements [2**23]: memory budget (floats per intermediate) when sweeping planes in chunks.
      sgm [True]: semi-global aggregation of the cost volume before the winner is taken (``sgm_aggregate``).
      p1, p2 [0.03, 0.3]: SGM penalties for one-plane and larger depth jumps, in units of the matching cost
        (1 - ZNCC) / 2 in [0, 1].
      fill ["pushpull"]: what non-confident pixels get: "pushpull" (inverse depth interpolated from the
        confident pixels, ``push_pull_fill``), "sgm" (the SGM winner itself), "none" (no depth: the sparse
        initialisation of earlier versions; every other fill makes the initialisation dense).
      seed [0]: recorded only (the method is deterministic).
    """

    name = "mvs"

    def __init__(self, num_planes: int = 64, window: int = 7, max_sources: int = 4, top_k: Optional[int] = None,
                 min_score: float = 0.5, min_texture: float = 0.01, max_rel_depth: float = 0.02,
                 max_reproj_px: float = 1.0, min_consistent: int = 1, near: Optional[float] = None,
                 far: Optional[float] = None, use_masks: bool = True, chunk_elements: int = 2 ** 23,
                 sgm: bool = True, p1: float = 0.03, p2: float = 0.3, fill: str = "pushpull", seed: int = 0):
        checks = {
            "num_planes": int(num_planes) >= 3,
            "window": int(window) >= 3 and int(window) % 2 == 1,
            "max_sources": int(max_sources) >= 1,
            "top_k": top_k is None or int(top_k) >= 1,
            "min_consistent": int(min_consistent) >= 0,
            "max_rel_depth": max_rel_depth > 0,
            "max_reproj_px": max_reproj_px > 0,
            "chunk_elements": int(chunk_elements) >= 1,
            "p1": p1 >= 0, "p2": p2 >= 0,
            "fill": fill in ("pushpull", "sgm", "none"),
        }
        for key, ok in checks.items():
            if not ok:
                raise InputError(f"init.options.{key}", f"bad value {locals()[key]!r} for init=mvs "
                                                        "(see MVSInit's docstring)")
        self.num_planes = int(num_planes)
        self.window = int(window)
        self.max_sources = int(max_sources)
        self.top_k = None if top_k is None else int(top_k)
        self.min_score = float(min_score)
        self.min_texture = float(min_texture)
        self.max_rel_depth = float(max_rel_depth)
        self.max_reproj_px = float(max_reproj_px)
        self.min_consistent = int(min_consistent)
        self.near = near
        self.far = far
        self.use_masks = bool(use_masks)
        self.chunk_elements = int(chunk_elements)
        self.sgm, self.p1, self.p2, self.fill = bool(sgm), float(p1), float(p2), str(fill)
        self.seed = int(seed)

    # ------------------------------------------------------------------ stages
    def sweep(self, train: Scene, depth_range: torch.Tensor, sources: torch.Tensor,
              refs: Optional[torch.Tensor] = None) -> SweepResult:
        """Plane sweep + ZNCC + top-k aggregation (+ SGM) + sub-plane WTA for the views ``refs`` (default: every
        view) as references; ``sources`` (R, S) and ``depth_range`` (R, 2) are per reference."""
        cams = train.cameras
        R_, S = sources.shape
        refs = torch.arange(R_) if refs is None else refs
        V = R_
        H, W, D = train.height, train.width, self.num_planes
        # Grey levels, centred (ZNCC ignores offsets; centring keeps the running sums precise).
        grey = torch.einsum("c,vchw->vhw", torch.tensor(_GREY), train.images)[:, None] - 0.5  # (V, 1, H, W)

        # Inverse-depth hypotheses, plane 0 = near.
        t = torch.linspace(0, 1, D)
        inv_near, inv_far = 1 / depth_range[:, 0], 1 / depth_range[:, 1]
        invd = inv_near[:, None] + (inv_far - inv_near)[:, None] * t[None]  # (V, D)

        # Reference window statistics.
        mu_r = box_filter(grey, self.window)
        var_r = (box_filter(grey * grey, self.window) - mu_r ** 2).clamp_min(0)
        texture = var_r.sqrt()[refs, 0]

        # Pairs (reference r, source s), ordered by reference: pair p = r * S + k.
        ref = refs.repeat_interleave(S)
        rpos = torch.arange(V).repeat_interleave(S)  # position of the pair's reference among ``refs``
        src = sources.reshape(-1)
        P = ref.numel()
        T = cams.viewmats.double()
        T_rs = T[src] @ torch.linalg.inv(T[ref])  # reference camera -> source camera
        Ks, Kr = cams.K.double()[src], cams.K.double()[ref]
        A = (Ks @ T_rs[:, :3, :3] @ torch.linalg.inv(Kr)).float()  # (P, 3, 3)
        b = (Ks @ T_rs[:, :3, 3:]).float()  # (P, 3, 1)
        Ap = A @ pixel_grid(H, W)  # (P, 3, HW): homogeneous source pixel of the plane at infinity

        k = self.top_k if self.top_k is not None else math.ceil(S / 2)
        k = min(k, S)
        volume = torch.empty(V, D, H, W)
        chunk = max(1, self.chunk_elements // (P * H * W))
        grey_r, mu_rp, var_rp = grey[ref], mu_r[ref], var_r[ref]  # (P, 1, H, W)
        grey_s = grey[src]
        for d0 in range(0, D, chunk):
            d1 = min(D, d0 + chunk)
            Dc = d1 - d0
            # p_s ~ K_s (R K_r^-1 p + t / d) = A p + b * invd
            iv = invd[rpos, d0:d1][:, :, None]  # (P, Dc, 1)
            z = Ap[:, None, 2] + b[:, None, 2] * iv  # (P, Dc, HW)
            front = z > 1e-8
            z = torch.where(front, z, torch.ones_like(z))
            u = (Ap[:, None, 0] + b[:, None, 0] * iv) / z
            v = (Ap[:, None, 1] + b[:, None, 1] * iv) / z
            inside = front & (u >= 0) & (u <= W) & (v >= 0) & (v <= H)
            grid = to_grid(u, v, W, H).reshape(P, Dc * H, W, 2)
            warped = F.grid_sample(grey_s, grid, mode="bilinear", padding_mode="border", align_corners=False)
            warped = warped.reshape(P, Dc, H, W)  # planes as channels: box filters act per plane
            mu_s = box_filter(warped, self.window)
            var_s = (box_filter(warped * warped, self.window) - mu_s ** 2).clamp_min(0)
            cov = box_filter(warped * grey_r, self.window) - mu_rp * mu_s
            zncc = (cov / (var_rp.clamp_min(1e-5) * var_s.clamp_min(1e-5)).sqrt()).clamp(-1, 1)
            zncc = torch.where(inside.reshape(P, Dc, H, W), zncc, torch.full_like(zncc, -1.0))
            per_src = zncc.reshape(V, S, Dc, H, W)
            if k == 1:
                agg = per_src.amax(1)
            elif k < S:
                agg = per_src.topk(k, dim=1).values.mean(1)
            else:
                agg = per_src.mean(1)
            volume[:, d0:d1] = agg

        if self.sgm:
            # Semi-global matching: aggregate the matching cost (1 - ZNCC) / 2 along 8 image directions with
            # smoothness penalties p1 (one plane) and p2 (larger jumps; lowered across grey-level edges) along
            # the 4 axis directions, then take the winner of the aggregated volume. The ZNCC score of that plane is kept as the match score.
            agg = -sgm_aggregate((1 - volume) / 2, grey[refs, 0] + 0.5, self.p1, self.p2)
        else:
            agg = volume
        best, plane = agg.max(dim=1)  # (V, H, W)
        score = volume.gather(1, plane[:, None])[:, 0]
        lo = (plane - 1).clamp_min(0)
        hi = (plane + 1).clamp_max(D - 1)
        s_lo = agg.gather(1, lo[:, None])[:, 0]
        s_hi = agg.gather(1, hi[:, None])[:, 0]
        curv = s_lo - 2 * best + s_hi
        offset = torch.where(curv < -1e-8, 0.5 * (s_lo - s_hi) / curv.clamp_max(-1e-8), torch.zeros_like(curv))
        offset = offset.clamp(-0.5, 0.5)
        offset = torch.where((plane > 0) & (plane < D - 1), offset, torch.zeros_like(offset))
        step = (inv_far - inv_near) / (D - 1)  # (V,)
        inv = invd.gather(1, plane.reshape(V, -1)).reshape(V, H, W) + offset * step[:, None, None]
        depth = 1.0 / inv.clamp_min(1e-12)
        return SweepResult(depth=depth, score=score, plane=plane, texture=texture)

    def consistency(self, cams: Cameras, depth: torch.Tensor, valid: torch.Tensor,
                    sources: torch.Tensor) -> torch.Tensor:
        """Number of source views each pixel is geometrically consistent with (forward-backward check)."""
        V, H, W = depth.shape
        S = sources.shape[1]
        ref = torch.arange(V).repeat_interleave(S)
        src = sources.reshape(-1)
        world = cams.unproject(depth)  # (V, H, W, 3)
        # Forward: reference pixel -> world -> source pixel.
        R_s, t_s = cams.viewmats[src, :3, :3], cams.viewmats[src, :3, 3]
        cam_s = torch.einsum("pij,phwj->phwi", R_s, world[ref]) + t_s[:, None, None]
        z_s = cam_s[..., 2]
        z_safe = torch.where(z_s > 1e-8, z_s, torch.ones_like(z_s))
        uv_s = torch.einsum("pij,phwj->phwi", cams.K[src], cam_s)[..., :2] / z_safe[..., None]
        grid = to_grid(uv_s[..., 0], uv_s[..., 1], W, H)
        d_src = torch.where(valid, depth, torch.zeros_like(depth))[src][:, None]
        sampled = F.grid_sample(d_src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]
        support = F.grid_sample(valid[src][:, None].float(), grid, mode="bilinear", padding_mode="zeros",
                                align_corners=False)[:, 0]
        ok_fwd = (z_s > 1e-8) & (support > 0.999)
        # Backward: the source surface point at that location -> world -> reference.
        ones = torch.ones_like(uv_s[..., :1])
        rays = torch.einsum("pij,phwj->phwi", torch.linalg.inv(cams.K[src]), torch.cat([uv_s, ones], -1))
        pt_s = rays * sampled[..., None]
        c2w = cams.camtoworlds
        back_world = torch.einsum("pij,phwj->phwi", c2w[src, :3, :3], pt_s) + c2w[src, None, None, :3, 3]
        R_r, t_r = cams.viewmats[ref, :3, :3], cams.viewmats[ref, :3, 3]
        cam_r = torch.einsum("pij,phwj->phwi", R_r, back_world) + t_r[:, None, None]
        z_r = cam_r[..., 2]
        zr_safe = torch.where(z_r > 1e-8, z_r, torch.ones_like(z_r))
        uv_r = torch.einsum("pij,phwj->phwi", cams.K[ref], cam_r)[..., :2] / zr_safe[..., None]
        pix = pixel_grid(H, W)[:2].T.reshape(1, H, W, 2)
        reproj = (uv_r - pix).norm(dim=-1)
        d_ref = depth[ref]
        rel = (z_r - d_ref).abs() / d_ref.clamp_min(1e-12)
        ok = ok_fwd & (z_r > 1e-8) & (reproj < self.max_reproj_px) & (rel < self.max_rel_depth) & valid[ref]
        return ok.reshape(V, S, H, W).sum(1)

    # ------------------------------------------------------------------ entry point
    def reconstruct(self, scene: Scene) -> DenseDepth:
        """Dense depth of every view of ``scene`` (each view a reference once, its nearest views as sources)."""
        if scene.num_views < 2:
            raise InputError(f"init=mvs ({scene.name})",
                             f"multi-view stereo needs at least 2 train views, got {scene.num_views}")
        t0 = time.perf_counter()
        depth_range, range_source = mvs_depth_range(scene, self.near, self.far)
        sources = nearest_sources(scene.cameras, self.max_sources)
        with torch.no_grad():
            sw = self.sweep(scene, depth_range, sources)
            D = self.num_planes
            confident = (sw.score >= self.min_score) & (sw.texture >= self.min_texture) \
                & (sw.plane > 0) & (sw.plane < D - 1)
            if self.min_consistent > 0:
                n_cons = self.consistency(scene.cameras, sw.depth, confident, sources)
                confident = confident & (n_cons >= min(self.min_consistent, sources.shape[1]))
            if self.use_masks and scene.masks is not None:  # after the check: any view may confirm a pixel
                confident &= scene.masks
            if self.fill == "pushpull" and confident.any():
                depth = fill_depth(sw.depth, confident)
            else:
                depth = sw.depth
        confidence = torch.where(confident, sw.score.clamp(0, 1), torch.zeros_like(sw.score))
        meta = {
            "depth_range": depth_range.tolist(), "depth_range_source": range_source,
            "num_planes": self.num_planes, "window": self.window, "sources": sources.tolist(),
            "sgm": self.sgm, "p1": self.p1, "p2": self.p2, "fill": self.fill,
            "confident_fraction": float(confident.float().mean()),
            "seconds": time.perf_counter() - t0, "seed": self.seed,
        }
        return DenseDepth(depth=depth, confident=confident, confidence=confidence, meta=meta)

    def __call__(self, train: Scene) -> PointInit:
        dense = self.reconstruct(train)
        if not dense.confident.any():
            raise InputError(f"init=mvs ({train.name})",
                             "no pixel passed the photo-consistency and geometric filters; check the poses and the "
                             f"depth range (from {dense.meta['depth_range_source']}: {dense.meta['depth_range']}), "
                             "or relax init.options.min_score / max_rel_depth")
        valid = dense.confident if self.fill == "none" else torch.ones_like(dense.confident)
        meta = {**dense.meta, "valid_fraction": float(valid.float().mean())}
        return point_init_from_depth(train, dense.depth, valid, method="mvs", meta=meta,
                                     confidence=dense.confidence)
