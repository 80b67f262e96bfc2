"""Tiny analytic scenes for the initialiser tests: a ray caster for a textured plane + spheres.

The texture is a fixed sum of 3D sinusoids evaluated at the surface point, so the scene is Lambertian and
every view sees the same colour at the same 3D point; depth is exact (analytic ray intersection). Images are
rendered with 2x2 supersampling (anti-aliased), depth at pixel centres. Also: a reader for the LLFF fern
scene (poses_bounds.npy + COLMAP points3D.bin) used when the shared loaders are not available.
"""

from __future__ import annotations

import numpy as np
import torch

from feat2gs.scene import Cameras, Scene


def look_at(center, target, up=(0.0, -1.0, 0.0)) -> torch.Tensor:
    """World-to-camera 4x4 (OpenCV: x right, y down, z forward) of a camera at ``center`` facing ``target``."""
    c = torch.tensor(center, dtype=torch.float64)
    z = torch.tensor(target, dtype=torch.float64) - c
    z = z / z.norm()
    x = torch.linalg.cross(torch.tensor(up, dtype=torch.float64), z)
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    R = torch.stack([x, y, z])  # rows: camera axes in world coordinates
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = R
    T[:3, 3] = -R @ c
    return T.float()


class TexturedWorld:
    """A plane n.X = c plus spheres, coloured by a seeded sum of 3D sinusoids."""

    def __init__(self, plane_normal=(0.1, -0.15, 1.0), plane_offset=5.0,
                 spheres=(((0.35, 0.15, 3.6), 0.7), ((-0.6, -0.35, 4.2), 0.35)), seed=0,
                 waves=32, freq=(8.0, 40.0)):
        n = torch.tensor(plane_normal, dtype=torch.float64)
        self.n = n / n.norm()
        self.c = float(plane_offset)
        self.spheres = [(torch.tensor(ctr, dtype=torch.float64), float(r)) for ctr, r in spheres]
        g = torch.Generator().manual_seed(seed)
        dirs = torch.randn(waves, 3, generator=g, dtype=torch.float64)
        dirs = dirs / dirs.norm(dim=1, keepdim=True)
        mags = freq[0] * (freq[1] / freq[0]) ** torch.rand(waves, 1, generator=g, dtype=torch.float64)
        self.w = dirs * mags
        self.phase = torch.rand(waves, generator=g, dtype=torch.float64) * 2 * np.pi
        mix = torch.rand(waves, 3, generator=g, dtype=torch.float64) + 0.2  # per-channel wave amplitudes
        self.mix = mix / mix.sum(0)

    def color(self, X: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] of surface points X (N, 3): a per-channel mix of the same sinusoids."""
        s = torch.sin(X @ self.w.T + self.phase) @ self.mix  # (N, 3), std ~ 0.15
        return (0.5 + 0.9 * s).clamp(0, 1)

    def cast(self, origin: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
        """Ray parameter t of the first hit for rays origin + t * dirs (dirs (N, 3)); inf for no hit."""
        denom = dirs @ self.n
        t_plane = (self.c - origin @ self.n) / denom
        t_best = torch.where(t_plane > 1e-6, t_plane, torch.full_like(t_plane, float("inf")))
        for ctr, r in self.spheres:
            oc = origin - ctr
            a = (dirs * dirs).sum(-1)
            bq = 2 * (dirs @ oc)
            cq = oc @ oc - r * r
            disc = bq * bq - 4 * a * cq
            sq = disc.clamp_min(0).sqrt()
            t1 = (-bq - sq) / (2 * a)
            hit = (disc >= 0) & (t1 > 1e-6)
            t_best = torch.where(hit & (t1 < t_best), t1, t_best)
        return t_best

    def render(self, cameras: Cameras, supersample: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (V, 3, H, W) and z-depths (V, H, W) (0 where a ray misses everything)."""
        V, H, W = len(cameras), cameras.height, cameras.width
        images, depths = [], []
        for v in range(V):
            K_inv = torch.linalg.inv(cameras.K[v].double())
            c2w = torch.linalg.inv(cameras.viewmats[v].double())
            origin = c2w[:3, 3]

            def rays_at(offset_x: float, offset_y: float):
                ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float64) + offset_y,
                                        torch.arange(W, dtype=torch.float64) + offset_x, indexing="ij")
                pix = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(-1, 3)
                dirs = (pix @ K_inv.T) @ c2w[:3, :3].T  # camera z component = 1: t is z-depth
                return dirs, self.cast(origin, dirs)

            acc = torch.zeros(H * W, 3, dtype=torch.float64)
            for i in range(supersample):
                for j in range(supersample):
                    dirs, t = rays_at((j + 0.5) / supersample, (i + 0.5) / supersample)
                    hit = torch.isfinite(t)
                    acc[hit] += self.color(origin + dirs[hit] * t[hit, None])
            _, t = rays_at(0.5, 0.5)
            images.append((acc / supersample ** 2).reshape(H, W, 3).permute(2, 0, 1))
            depths.append(torch.where(torch.isfinite(t), t, torch.zeros_like(t)).reshape(H, W))
        return torch.stack(images).float(), torch.stack(depths).float()


def synthetic_scene(num_views=3, width=256, height=192, spacing=0.35, seed=0, world=None, target=(0.0, 0.0, 4.0),
                    with_depth=True) -> Scene:
    """``num_views`` cameras on a horizontal line (y slightly varying) looking at ``target``."""
    world = world or TexturedWorld(seed=seed)
    f = 0.9 * width
    K = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=torch.float32)
    xs = (torch.arange(num_views, dtype=torch.float32) - (num_views - 1) / 2) * spacing
    viewmats = torch.stack([look_at((float(x), 0.05 * float(i % 2), 0.0), target) for i, x in enumerate(xs)])
    cams = Cameras(K.expand(num_views, 3, 3).clone(), viewmats, width, height)
    images, depths = world.render(cams)
    return Scene(name="raycast", images=images, cameras=cams, image_names=[f"view{i}" for i in range(num_views)],
                 depths=depths if with_depth else None)
