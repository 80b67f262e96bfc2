"""A procedural multi-view scene with exact ground truth, rendered by analytic ray casting (torch, CPU).

World (right-handed, z up, metres-like units):

* a ground plane z = 0 (checkerboard modulated by value noise) and a back wall, the plane y = 1.8 facing -y
  (value-noise texture); both are infinite;
* ``num_objects`` objects (default 5; at least one sphere, one box and one cylinder) placed without overlap in
  the footprint x in [-1.1, 1.1], y in [-0.6, 1.0], standing on the ground (spheres may float up to 0.4 above
  it), up to ~1 unit tall: spheres (radius 0.2-0.38), boxes with a random yaw, vertical capped cylinders. Each
  has a solid (3D) texture in its own frame: a checkerboard, square-wave stripes along a random direction, or
  multi-octave value noise, each between two random colours; checkers and stripes are modulated by
  low-frequency noise so no pattern repeats exactly (feature matching stays unambiguous);
* Lambertian shading from one directional light (from the front-left, above) with an ambient term and cast
  shadows of the objects: the colour of a surface point does not depend on the viewpoint, so it is the same
  in every view that sees it.

Cameras (OpenCV convention, pixel centres at (j + 0.5, i + 0.5)): ``num_views`` views on a horizontal arc of
``arc_deg`` degrees (default 80) and radius ``radius`` (3.0) around the target (0, 0.3, 0.45), at height
``camera_height`` (1.6), centred on the -y side, in order along the arc, all looking at the target; horizontal
field of view ``fov_deg`` (55); principal point at the image centre unless ``principal_point`` is given.
Depths range from 2 to about 9 units (the wall is seen at grazing angles near the image corners of the outer
views); the objects cover about a fifth of the pixels.

Ground truth: ``depths`` are exact z-depths of the surface hit by the ray through each pixel centre; ``images``
average ``supersample`` x ``supersample`` stratified rays per pixel (anti-aliasing; ``supersample=1`` samples
the pixel centre only, so colours then belong exactly to the depth's surface point). ``masks`` (option
``mask``): ``"all"`` (default) = pixels whose ray hits the world (every pixel for the default path; a miss would
get the sky colour and depth 0), ``"objects"`` = pixels showing one of the objects (not the ground or wall).
``points`` = the unprojection of every valid depth pixel of every view; ``depth_range`` = per-view [min, max]
of the depth map; ``meta`` holds ``object_ids`` (V, H, W) int16 (-1 sky, 0 ground, 1 wall, 2.. objects),
``normals`` (V, H, W, 3) world-space unit normals, the object list and the options.

Everything is a function of ``seed`` and the options (one private numpy ``Generator`` draws the placement,
sizes, textures and colours; global RNG state is neither used nor changed). Ray casting runs in float64 by
default (``dtype``), textures in float32; the outputs are float32. Cost: about 0.5 s of one CPU core for 8 views
at 128x96 (2x2 supersampling), about 2.5 s at 256x192; rendering runs on one torch thread (see
:func:`single_thread`).
"""

from __future__ import annotations

import colorsys
import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from typing import Optional, Sequence

import numpy as np
import torch

from ..errors import InputError
from ..scene import Cameras, Scene

WALL_Y = 1.8
TARGET = (0.0, 0.3, 0.45)
FOOTPRINT = ((-1.1, 1.1), (-0.6, 1.0))
GROUND_ID, WALL_ID, FIRST_OBJECT_ID = 0, 1, 2
SKY = (0.55, 0.7, 0.9)


# ---------------------------------------------------------------------------------------------- options
@dataclass(frozen=True)
class SyntheticOptions:
    """Options of :func:`make_synthetic_scene` (besides seed, num_views, width, height)."""

    num_objects: int = 5
    fov_deg: float = 55.0  # horizontal field of view
    arc_deg: float = 80.0  # angular extent of the camera arc
    radius: float = 3.0  # horizontal distance of the cameras from the target
    camera_height: float = 1.6
    supersample: int = 2  # rays per pixel along each axis for the images
    shadows: bool = True
    mask: str = "all"  # "all" | "objects"
    ambient: float = 0.35
    light_dir: tuple = (-0.45, -0.6, 0.75)  # towards the light
    principal_point: Optional[tuple] = None  # (cx, cy) in pixels; None = image centre
    dtype: str = "float64"  # precision of the ray casting ("float32" is faster, less exact)

    def validate(self) -> None:
        if self.num_objects < 0:
            raise InputError("synthetic.num_objects", f"must be >= 0, got {self.num_objects}")
        if not 1.0 <= self.fov_deg <= 150.0:
            raise InputError("synthetic.fov_deg", f"must be in [1, 150], got {self.fov_deg}")
        if not 0.0 <= self.arc_deg <= 150.0:
            raise InputError("synthetic.arc_deg", f"must be in [0, 150] (cameras stay in front of the wall), got "
                                                  f"{self.arc_deg}")
        if self.radius <= 1.5:
            raise InputError("synthetic.radius", f"must be > 1.5 (cameras outside the objects), got {self.radius}")
        if self.camera_height <= 0.05:
            raise InputError("synthetic.camera_height", f"must be above the ground, got {self.camera_height}")
        if int(self.supersample) < 1:
            raise InputError("synthetic.supersample", f"must be >= 1, got {self.supersample}")
        if self.mask not in ("all", "objects"):
            raise InputError("synthetic.mask", f"must be 'all' or 'objects', got {self.mask!r}")
        if self.dtype not in ("float32", "float64"):
            raise InputError("synthetic.dtype", f"must be 'float32' or 'float64', got {self.dtype!r}")


# ---------------------------------------------------------------------------------------------- textures
class ValueNoise:
    """Value noise in 2 or 3 dimensions: seeded random values on the integer lattice (a periodic table of
    ``period``^3 values), smoothstep-weighted multilinear interpolation; ``fbm`` sums octaves. In [0, 1]."""

    def __init__(self, rng: np.random.Generator, period: int = 32):
        self.period = period
        self.values = torch.from_numpy(rng.random(period ** 3).astype(np.float32))

    def __call__(self, p: torch.Tensor) -> torch.Tensor:
        D, P = p.shape[1], self.period
        fl = torch.floor(p)
        i = fl.long()
        f = p - fl
        w = f * f * (3.0 - 2.0 * f)  # weight of the upper lattice point per axis
        lo = [(i[:, a] & (P - 1)) * P ** (D - 1 - a) for a in range(D)]
        hi = [((i[:, a] + 1) & (P - 1)) * P ** (D - 1 - a) for a in range(D)]
        vals = self.values.to(p.dtype)

        def interp(a: int, base):  # interpolate over axes a.. given the flat index of axes < a
            if a == D:
                return vals[base]
            v0, v1 = interp(a + 1, base + lo[a]), interp(a + 1, base + hi[a])
            return v0 + w[:, a] * (v1 - v0)

        return interp(0, 0)

    def fbm(self, p: torch.Tensor, octaves: int = 3) -> torch.Tensor:
        total, amp, norm = torch.zeros(p.shape[0], dtype=p.dtype), 1.0, 0.0
        for k in range(octaves):
            total = total + amp * self(p * (2.0 ** k) + 17.3 * k)
            norm += amp
            amp *= 0.5
        return total / norm


@dataclass
class Texture:
    """A solid texture: ``kind`` in {"checker", "stripes", "noise"} between ``color_a`` and ``color_b``
    (RGB in [0, 1]) at ``frequency`` cycles per unit; checkers and stripes are multiplied by
    ``1 - modulation * fbm`` of a noise at ``mod_frequency``."""

    kind: str
    color_a: tuple
    color_b: tuple
    frequency: float
    direction: tuple = (1.0, 0.0, 0.0)  # stripes
    phase: tuple = (0.0, 0.0, 0.0)
    modulation: float = 0.3
    mod_frequency: float = 1.5

    def __call__(self, p: torch.Tensor, noise: ValueNoise) -> torch.Tensor:
        D = p.shape[1]  # 2 (planes) or 3
        q = p * self.frequency + torch.tensor(self.phase[:D], dtype=p.dtype)
        if self.kind == "checker":
            fq = torch.floor(q).long()
            mix = (sum(fq[:, a] for a in range(D)) & 1).to(p.dtype)
        elif self.kind == "stripes":
            direction = torch.tensor(self.direction[:D], dtype=p.dtype)
            u = q @ (direction / direction.norm().clamp_min(1e-6))
            mix = ((u - torch.floor(u)) < 0.5).to(p.dtype)
        elif self.kind == "noise":
            n = noise.fbm(q, octaves=3)
            mix = torch.clamp((n - 0.5) * 2.5 + 0.5, 0.0, 1.0)  # contrast-stretched
        else:
            raise InputError("synthetic.texture", f"unknown texture kind {self.kind!r}")
        a = torch.tensor(self.color_a, dtype=p.dtype)
        b = torch.tensor(self.color_b, dtype=p.dtype)
        col = a + mix[:, None] * (b - a)
        if self.kind == "noise":  # already varies at every scale
            return col
        mod = 1.0 - self.modulation * noise.fbm(p * self.mod_frequency + 5.1, octaves=2)  # low-frequency variation
        return col * mod[:, None]


# ---------------------------------------------------------------------------------------------- primitives
_EPS = 1e-7
_INF = float("inf")


@dataclass
class Primitive:
    """One surface of the world. ``intersect`` returns (t, normal) for rays o + t d (t = inf on a miss)."""

    kind: str  # "plane" | "sphere" | "box" | "cylinder"
    texture: Texture
    centre: tuple = (0.0, 0.0, 0.0)
    normal: tuple = (0.0, 0.0, 1.0)  # plane
    radius: float = 0.0  # sphere, cylinder
    half_size: tuple = (0.0, 0.0, 0.0)  # box
    height: float = 0.0  # cylinder (centre = centre of the base disc)
    yaw: float = 0.0  # box rotation about z (radians)

    def local(self, p: torch.Tensor) -> torch.Tensor:
        """Texture coordinates of surface points: 2D in-plane coordinates for planes, else 3D points in the
        primitive's own frame."""
        if self.kind == "plane":
            n = np.asarray(self.normal, float)
            u = np.cross(n, [1.0, 0.0, 0.0] if abs(n[0]) < 0.9 else [0.0, 1.0, 0.0])
            u /= np.linalg.norm(u)
            basis = torch.tensor(np.stack([u, np.cross(n, u)], 1), dtype=p.dtype)  # (3, 2)
            return (p - torch.tensor(self.centre, dtype=p.dtype)) @ basis
        q = p - torch.tensor(self.centre, dtype=p.dtype)
        return q @ _rot_z(-self.yaw, p.dtype).T if self.kind == "box" else q

    def intersect(self, o: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, "_hit_" + self.kind)(o, d)

    def bound(self) -> Optional[tuple[tuple, float]]:
        """(centre, radius) of a sphere enclosing the primitive; None for (infinite) planes."""
        if self.kind == "sphere":
            return self.centre, self.radius
        if self.kind == "box":
            return self.centre, float(np.linalg.norm(self.half_size))
        if self.kind == "cylinder":
            c = (self.centre[0], self.centre[1], self.centre[2] + self.height / 2)
            return c, float(math.hypot(self.radius, self.height / 2))
        return None

    def _hit_plane(self, o, d):
        n = torch.tensor(self.normal, dtype=o.dtype)
        c = torch.tensor(self.centre, dtype=o.dtype)
        den = d @ n
        t = ((c - o) @ n) / torch.where(den.abs() > 1e-12, den, torch.full_like(den, 1e-12))
        t = torch.where((t > _EPS) & (den < 0), t, torch.full_like(t, _INF))  # one-sided: seen from the front
        return t, n.expand_as(d)

    def _hit_sphere(self, o, d):
        c = torch.tensor(self.centre, dtype=o.dtype)
        oc = o - c
        a = _rowdot(d, d)
        b = _rowdot(oc, d)
        cc = _rowdot(oc, oc) - self.radius ** 2
        disc = b * b - a * cc
        sq = torch.sqrt(disc.clamp_min(0))
        t = (-b - sq) / a
        t = torch.where((disc >= 0) & (t > _EPS), t, torch.full_like(t, _INF))
        n = (o + torch.where(torch.isfinite(t), t, torch.zeros_like(t))[:, None] * d - c) / self.radius
        return t, n

    def _hit_box(self, o, d):
        Rinv = _rot_z(-self.yaw, o.dtype)
        ol = (o - torch.tensor(self.centre, dtype=o.dtype)) @ Rinv.T
        dl = d @ Rinv.T
        dl = torch.where(dl.abs() < 1e-12, torch.full_like(dl, 1e-12), dl)
        h = torch.tensor(self.half_size, dtype=o.dtype)
        t1, t2 = (-h - ol) / dl, (h - ol) / dl
        tmin, tmax = torch.minimum(t1, t2), torch.maximum(t1, t2)
        tn, axis = tmin.max(1)
        tf = tmax.min(1).values
        t = torch.where((tn <= tf) & (tn > _EPS), tn, torch.full_like(tn, _INF))
        nl = torch.zeros_like(dl)
        nl.scatter_(1, axis[:, None], -torch.sign(dl.gather(1, axis[:, None])))
        return t, nl @ Rinv  # back to world: R = Rinv^T, n_world = R n_local

    def _hit_cylinder(self, o, d):
        cx, cy, z0 = self.centre
        r, z1 = self.radius, self.centre[2] + self.height
        ox, oy = o[:, 0] - cx, o[:, 1] - cy
        a = d[:, 0] ** 2 + d[:, 1] ** 2
        b = ox * d[:, 0] + oy * d[:, 1]
        cc = ox * ox + oy * oy - r * r
        disc = b * b - a * cc
        safe_a = torch.where(a > 1e-12, a, torch.ones_like(a))
        ts = (-b - torch.sqrt(disc.clamp_min(0))) / safe_a
        zs = o[:, 2] + ts * d[:, 2]
        ts = torch.where((a > 1e-12) & (disc >= 0) & (ts > _EPS) & (zs >= z0) & (zs <= z1), ts,
                         torch.full_like(ts, _INF))
        dz = torch.where(d[:, 2].abs() > 1e-12, d[:, 2], torch.full_like(d[:, 2], 1e-12))
        best_t, best_n = ts, torch.stack([ox + ts.nan_to_num(0, 0, 0) * d[:, 0], oy + ts.nan_to_num(0, 0, 0) * d[:, 1],
                                          torch.zeros_like(ts)], 1) / r
        for zc, nz in ((z1, 1.0), (z0, -1.0)):
            tc = (zc - o[:, 2]) / dz
            px, py = ox + tc * d[:, 0], oy + tc * d[:, 1]
            ok = (tc > _EPS) & (px * px + py * py <= r * r) & (nz * d[:, 2] < 0)
            tc = torch.where(ok, tc, torch.full_like(tc, _INF))
            closer = tc < best_t
            best_t = torch.where(closer, tc, best_t)
            best_n = torch.where(closer[:, None], torch.tensor([0.0, 0.0, nz], dtype=o.dtype), best_n)
        return best_t, best_n

    def describe(self) -> dict:
        out = {"kind": self.kind, "texture": self.texture.kind}
        if self.kind == "plane":
            out.update(point=list(self.centre), normal=list(self.normal))
        elif self.kind == "sphere":
            out.update(centre=list(self.centre), radius=self.radius)
        elif self.kind == "box":
            out.update(centre=list(self.centre), half_size=list(self.half_size), yaw=self.yaw)
        else:
            out.update(base_centre=list(self.centre), radius=self.radius, height=self.height)
        return out


def _rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot product of (N, k) tensors (a matrix-vector product: much faster than .sum(1) on CPU)."""
    return (a * b) @ torch.ones(a.shape[1], dtype=a.dtype)


def _rot_z(a: float, dtype) -> torch.Tensor:
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=dtype)


# ---------------------------------------------------------------------------------------------- world
@dataclass
class Hit:
    """Nearest intersections of N rays: ``t`` (inf on a miss; equals z-depth for rays whose direction has
    camera-z component 1), ``obj`` (-1 on a miss), world ``point`` and unit ``normal``."""

    t: torch.Tensor
    obj: torch.Tensor
    point: torch.Tensor
    normal: torch.Tensor


@dataclass
class RenderBuffers:
    images: torch.Tensor  # (V, 3, H, W) float32
    depths: torch.Tensor  # (V, H, W) float32 z-depth, 0 on a miss
    object_ids: torch.Tensor  # (V, H, W) int16
    normals: torch.Tensor  # (V, H, W, 3) float32


@dataclass
class SyntheticWorld:
    primitives: list
    noise: ValueNoise
    light_dir: tuple = SyntheticOptions.light_dir
    ambient: float = SyntheticOptions.ambient
    shadows: bool = True
    dtype: torch.dtype = torch.float64

    def __post_init__(self) -> None:
        self._bounded = [k for k, p in enumerate(self.primitives) if p.bound() is not None]
        bounds = [self.primitives[k].bound() for k in self._bounded]
        self._centres = torch.tensor([b[0] for b in bounds], dtype=torch.float64).reshape(-1, 3)
        self._radii = torch.tensor([b[1] for b in bounds], dtype=torch.float64)

    def cast(self, origins: torch.Tensor, dirs: torch.Tensor) -> Hit:
        """Nearest hits of the rays ``origins + t dirs`` (t > 0); ``origins`` is (N, 3), or (3,) for rays
        sharing one origin (camera rays: bounding-sphere culling is then a cheap cone test)."""
        o, d = origins.to(self.dtype), dirs.to(self.dtype)
        n_rays = d.shape[0]
        shared = o.ndim == 1
        o_all = o.expand_as(d) if shared else o
        t = torch.full((n_rays,), _INF, dtype=self.dtype)
        obj = torch.full((n_rays,), -1, dtype=torch.long)
        normal = torch.zeros((n_rays, 3), dtype=self.dtype)
        cands = self._cone_candidates(o, d) if shared else self._ray_candidates(o, d)
        for k, prim in enumerate(self.primitives):
            idx = cands[k]
            if idx is None:
                tk, nk = prim.intersect(o_all, d)
                closer = tk < t
                t = torch.where(closer, tk, t)
                obj = torch.where(closer, torch.full_like(obj, k), obj)
                normal = torch.where(closer[:, None], nk, normal)
            elif idx.numel():
                tk, nk = prim.intersect(o_all[idx], d[idx])
                closer = tk < t[idx]
                sel = idx[closer]
                t[sel], obj[sel], normal[sel] = tk[closer], k, nk[closer]
        hit = torch.isfinite(t)
        point = o_all + torch.where(hit, t, torch.zeros_like(t))[:, None] * d
        normal = normal / normal.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return Hit(t, obj, point, normal)

    # Bounding-sphere culling: per primitive, the indices of the rays (t > 0) that pass within its bounding
    # sphere, or None (planes, or a ray origin inside the sphere): test every ray. Tests are conservative.
    def _split(self, near: torch.Tensor, inside: Optional[torch.Tensor] = None) -> list[Optional[torch.Tensor]]:
        out: list[Optional[torch.Tensor]] = [None] * len(self.primitives)
        for col, k in enumerate(self._bounded):
            if inside is None or not bool(inside[col]):
                out[k] = near[:, col].nonzero().squeeze(1)
        return out

    def _cone_candidates(self, o: torch.Tensor, d: torch.Tensor) -> list[Optional[torch.Tensor]]:
        """Rays from one origin: the ray is within the cone from o around the sphere (angle test)."""
        C, r = self._centres.to(d.dtype), self._radii.to(d.dtype)
        v = C - o  # (K, 3)
        dist = v.norm(dim=1)
        inside = dist <= r * (1 + 1e-6)
        cos_half = torch.sqrt((1 - (r / dist.clamp_min(1e-12)) ** 2).clamp_min(0))  # cone half-angle cosine
        near = d @ v.T >= d.norm(dim=1, keepdim=True) * (dist * cos_half * (1 - 1e-6))
        return self._split(near, inside)

    def _ray_candidates(self, o: torch.Tensor, d: torch.Tensor) -> list[Optional[torch.Tensor]]:
        """General rays: distance from the sphere centre to the ray, and the centre not behind the origin."""
        C, r2 = self._centres.to(d.dtype), (self._radii ** 2).to(d.dtype)
        proj = d @ C.T - _rowdot(o, d)[:, None]  # (c - o).d, (N, K)
        oc2 = _rowdot(o, o)[:, None] - 2 * (o @ C.T) + (C * C).sum(1)  # |c - o|^2
        near = (oc2 - proj * proj / _rowdot(d, d)[:, None] <= r2 * (1 + 1e-6)) & ((proj > 0) | (oc2 <= r2))
        return self._split(near)

    def _shadow_candidates(self, p: torch.Tensor, light: torch.Tensor) -> list[Optional[torch.Tensor]]:
        """Rays from many points along one direction: project along the light and compare in 2D."""
        e1 = torch.linalg.cross(light, torch.tensor([0.0, 0.0, 1.0], dtype=p.dtype))
        e1 = e1 / e1.norm()
        E = torch.stack([e1, torch.linalg.cross(light, e1), light], 1)  # (3, 3), orthonormal; last axis = light
        C, r = self._centres.to(p.dtype) @ E, self._radii.to(p.dtype)
        q = p @ E
        dx, dy = q[:, :1] - C[:, 0], q[:, 1:2] - C[:, 1]
        near = (dx * dx + dy * dy <= (r * r) * (1 + 1e-6)) & (q[:, 2:] < C[:, 2] + r)
        return self._split(near)

    def shade(self, hit: Hit) -> torch.Tensor:
        """RGB (N, 3) in [0, 1] of the hit points: albedo * (ambient + (1 - ambient) * max(0, n.l) * lit)."""
        dt = hit.point.dtype
        col = torch.tensor(SKY, dtype=dt).repeat(hit.t.shape[0], 1)
        light = torch.tensor(self.light_dir, dtype=dt)
        light = light / light.norm()
        for k, prim in enumerate(self.primitives):
            sel = (hit.obj == k).nonzero().squeeze(1)
            if sel.numel() == 0:
                continue
            p, n = hit.point[sel], hit.normal[sel]
            albedo = prim.texture(prim.local(p).float(), self.noise).to(dt)  # colour needs no float64
            lam = (n @ light).clamp_min(0)
            if self.shadows:
                lam = lam * (~self._occluded(p + 1e-5 * n, light)).to(dt)
            col[sel] = albedo * (self.ambient + (1 - self.ambient) * lam)[:, None]
        return col.clamp(0, 1)

    def _occluded(self, p: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
        blocked = torch.zeros(p.shape[0], dtype=torch.bool)
        for prim, idx in zip(self.primitives, self._shadow_candidates(p, light)):
            if idx is not None and idx.numel():  # planes cannot shadow: the light is in front of the wall, above
                pi = p[idx]  # the ground
                blocked[idx] |= torch.isfinite(prim.intersect(pi, light.expand_as(pi))[0])
        return blocked

    def render(self, cameras: Cameras, supersample: int = 1) -> RenderBuffers:
        """Depth, object ids and normals at pixel centres, colours averaged over s x s rays per pixel."""
        with single_thread():
            return self._render(cameras, supersample)

    def _render(self, cameras: Cameras, supersample: int) -> RenderBuffers:
        V, H, W, s = len(cameras), cameras.height, cameras.width, int(supersample)
        images = torch.empty(V, 3, H, W)
        depths = torch.empty(V, H, W)
        ids = torch.empty(V, H, W, dtype=torch.int16)
        normals = torch.empty(V, H, W, 3)
        for v in range(V):
            o, d = pixel_rays(cameras, v, offsets=[0.5])
            hit = self.cast(o, d)
            depths[v] = torch.where(hit.obj >= 0, hit.t, torch.zeros_like(hit.t)).reshape(H, W).float()
            ids[v] = hit.obj.reshape(H, W).to(torch.int16)
            normals[v] = hit.normal.reshape(H, W, 3).float()
            if s == 1:
                col = self.shade(hit)
            else:
                offs = [(k + 0.5) / s for k in range(s)]
                o, d = pixel_rays(cameras, v, offsets=offs)
                col = self.shade(self.cast(o, d)).reshape(H, W, s * s, 3).mean(2)
            images[v] = col.reshape(H, W, 3).permute(2, 0, 1).float()
        return RenderBuffers(images, depths, ids, normals)


@contextmanager
def single_thread():
    """Run torch ops on one intra-op thread, restoring the setting afterwards. The renderer is a long
    sequence of ops on ~10^5-element tensors: threading gains little there, and on a shared, oversubscribed
    CPU the waiting worker threads made it 10-25x slower (measured: 0.7 s vs 14-20 s for the default scene)."""
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def pixel_rays(cameras: Cameras, view: int, offsets: Sequence[float] = (0.5,), dtype=torch.float64
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays of view ``view`` through the points (j + ox, i + oy) of every pixel for every (oy, ox) in
    ``offsets`` x ``offsets``, ordered (i, j, sample): the camera centre (3,) and directions (N, 3). Directions
    have camera-z component 1, so the ray parameter of a hit is its z-depth."""
    H, W = cameras.height, cameras.width
    off = torch.tensor(list(offsets), dtype=dtype)
    ys = (torch.arange(H, dtype=dtype)[:, None] + off[None]).reshape(H, 1, -1, 1)
    xs = (torch.arange(W, dtype=dtype)[:, None] + off[None]).reshape(1, W, 1, -1)
    ys, xs = torch.broadcast_tensors(ys, xs)
    pix = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(-1, 3)
    Kinv = torch.linalg.inv(cameras.K[view].to(dtype))
    vm = cameras.viewmats[view].to(dtype)
    R, t = vm[:3, :3], vm[:3, 3]
    d = (pix @ Kinv.T) @ R  # R^T (K^-1 pix), row form
    return -R.T @ t, d


def _random_colour(rng: np.random.Generator, value: tuple[float, float]) -> tuple:
    h, s, v = rng.random(), rng.uniform(0.35, 0.9), rng.uniform(*value)
    return tuple(float(c) for c in colorsys.hsv_to_rgb(h, s, v))


def _random_texture(rng: np.random.Generator, kind: str, freq: tuple[float, float]) -> Texture:
    a = _random_colour(rng, (0.6, 1.0))
    b = _random_colour(rng, (0.15, 0.5))
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    return Texture(kind, a, b, float(rng.uniform(*freq)), tuple(float(x) for x in direction),
                   tuple(float(x) for x in rng.random(3)), float(rng.uniform(0.2, 0.4)), float(rng.uniform(1.0, 2.5)))


def make_world(seed: int = 0, num_objects: int = 5, light_dir: tuple = SyntheticOptions.light_dir,
               ambient: float = SyntheticOptions.ambient, shadows: bool = True, dtype: str = "float64"
               ) -> SyntheticWorld:
    """The procedural world of ``seed`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    noise = ValueNoise(rng)
    prims: list = [
        Primitive("plane", _random_texture(rng, "checker", (2.5, 4.0)), centre=(0.0, 0.0, 0.0),
                  normal=(0.0, 0.0, 1.0)),
        Primitive("plane", _random_texture(rng, "noise", (1.5, 3.0)), centre=(0.0, WALL_Y, 0.0),
                  normal=(0.0, -1.0, 0.0)),
    ]
    kinds = (["sphere", "box", "cylinder"] + list(rng.choice(["sphere", "box", "cylinder"], max(0, num_objects - 3))))
    kinds = [str(k) for k in rng.permutation(kinds)][:num_objects]
    placed: list[tuple[float, float, float]] = []  # (x, y, footprint radius)
    for kind in kinds:
        for _ in range(2000):
            if kind == "sphere":
                size = rng.uniform(0.2, 0.38)
                foot = size
            elif kind == "box":
                half = rng.uniform(0.15, 0.3, size=2)
                foot = float(np.hypot(*half))
            else:
                size = rng.uniform(0.15, 0.3)
                foot = size
            x = rng.uniform(FOOTPRINT[0][0] + foot, FOOTPRINT[0][1] - foot)
            y = rng.uniform(FOOTPRINT[1][0] + foot, FOOTPRINT[1][1] - foot)
            if all(math.hypot(x - px, y - py) > foot + pr + 0.05 for px, py, pr in placed):
                break
        else:
            raise InputError("synthetic.num_objects", f"cannot place {num_objects} objects without overlap")
        placed.append((x, y, foot))
        tex = _random_texture(rng, str(rng.choice(["checker", "stripes", "noise"])), (5.0, 11.0))
        if kind == "sphere":
            lift = float(rng.uniform(0.0, 0.4)) if rng.random() < 0.5 else 0.0
            prims.append(Primitive("sphere", tex, centre=(x, y, size + lift), radius=float(size)))
        elif kind == "box":
            hz = rng.uniform(0.15, 0.45)
            prims.append(Primitive("box", tex, centre=(x, y, hz), half_size=(float(half[0]), float(half[1]), float(hz)),
                                   yaw=float(rng.uniform(0, math.pi))))
        else:
            prims.append(Primitive("cylinder", tex, centre=(x, y, 0.0), radius=float(size),
                                   height=float(rng.uniform(0.3, 1.0))))
    return SyntheticWorld(prims, noise, tuple(light_dir), float(ambient), bool(shadows),
                          torch.float64 if dtype == "float64" else torch.float32)


# ---------------------------------------------------------------------------------------------- cameras
def look_at(centre: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """4x4 world-to-camera (OpenCV: x right, y down, z towards ``target``) of a camera at ``centre``."""
    fwd = target - centre
    fwd = fwd / np.linalg.norm(fwd)
    right = np.cross(fwd, up)
    right = right / np.linalg.norm(right)
    down = np.cross(fwd, right)
    R = np.stack([right, down, fwd])  # rows: camera axes in world coordinates
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = R, -R @ centre
    return m


def arc_cameras(num_views: int, width: int, height: int, fov_deg: float = SyntheticOptions.fov_deg,
                arc_deg: float = SyntheticOptions.arc_deg, radius: float = SyntheticOptions.radius,
                camera_height: float = SyntheticOptions.camera_height, principal_point: Optional[tuple] = None
                ) -> Cameras:
    """Cameras on the horizontal arc described in the module docstring, in order along the arc."""
    if num_views < 1:
        raise InputError("synthetic.num_views", f"must be >= 1, got {num_views}")
    if width < 1 or height < 1:
        raise InputError("synthetic.size", f"bad image size {width}x{height}")
    target = np.array(TARGET)
    angles = np.radians(np.linspace(-arc_deg / 2, arc_deg / 2, num_views)) if num_views > 1 else np.zeros(1)
    f = (width / 2) / math.tan(math.radians(fov_deg) / 2)
    cx, cy = principal_point if principal_point is not None else (width / 2, height / 2)
    K = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
    vms = [look_at(np.array([target[0] + radius * math.sin(a), target[1] - radius * math.cos(a), camera_height]),
                   target) for a in angles]
    return Cameras(torch.from_numpy(np.repeat(K[None], num_views, 0)).float(), torch.from_numpy(np.stack(vms)).float(),
                   int(width), int(height))


# ---------------------------------------------------------------------------------------------- scene
def parse_options(options: dict) -> SyntheticOptions:
    known = {f.name for f in fields(SyntheticOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InputError(f"synthetic.{unknown[0]}", f"unknown option; known: {', '.join(sorted(known))}")
    opts = replace(SyntheticOptions(), **options)
    opts.validate()
    return opts


def make_synthetic_scene(seed: int = 0, num_views: int = 8, width: int = 128, height: int = 96,
                         **options) -> Scene:
    """The synthetic scene of ``seed`` (see the module docstring; ``options`` are :class:`SyntheticOptions`)."""
    opts = parse_options(options)
    world = make_world(seed, opts.num_objects, opts.light_dir, opts.ambient, opts.shadows, opts.dtype)
    cameras = arc_cameras(num_views, width, height, opts.fov_deg, opts.arc_deg, opts.radius, opts.camera_height,
                          opts.principal_point)
    buf = world.render(cameras, opts.supersample)
    valid = buf.object_ids >= 0
    masks = valid if opts.mask == "all" else buf.object_ids >= FIRST_OBJECT_ID
    points = cameras.unproject(buf.depths)[valid]
    big = torch.finfo(torch.float32).max
    near = torch.where(valid, buf.depths, torch.full_like(buf.depths, big)).flatten(1).min(1).values
    far = buf.depths.flatten(1).max(1).values
    if not bool(valid.flatten(1).any(1).all()):
        raise InputError("synthetic", "a view sees no surface (check the camera options)")
    return Scene(
        name=f"synthetic-{seed}",
        images=buf.images,
        cameras=cameras,
        image_names=[f"view{v:03d}" for v in range(num_views)],
        masks=masks,
        depths=buf.depths,
        points=points,
        depth_range=torch.stack([near, far], 1),
        units="scene units (metres-like)",
        source=f"synthetic:seed={seed}",
        meta={"format": "synthetic", "seed": int(seed), "options": asdict(opts), "object_ids": buf.object_ids,
              "normals": buf.normals, "objects": [p.describe() for p in world.primitives]},
    )


def _register_format() -> None:
    from .catalogue import SceneCatalogue
    from .formats import SYNTHETIC, SceneFormat, register_format

    @register_format
    class SyntheticFormat(SceneFormat):
        name = SYNTHETIC
        markers = ()
        description = "the procedural synthetic scene (scene.path=synthetic)"

        def detect(self, root) -> int:
            return 0

        def load(self, root=None, seed: int = 0, num_views: int = 8, width: int = 128, height: int = 96,
                 **options) -> SceneCatalogue:
            return SceneCatalogue.from_scene(make_synthetic_scene(seed, num_views, width, height, **options),
                                             SYNTHETIC)

        def option_names(self) -> list[str]:
            return ["seed", "num_views", "width", "height"] + [f.name for f in fields(SyntheticOptions)]


_register_format()
