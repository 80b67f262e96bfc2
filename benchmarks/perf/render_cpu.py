"""Forward+backward speed of the CPU renderer vs the pure-torch reference. Prints one JSON line per config.

Synthetic scene (seeded, built in ``make_scene``): a smooth wavy surface ``z = 4 + 0.25 sin(2x) cos(3y)``
(world units) seen by ``VIEWS = 4`` pinhole cameras on a small arc (few-view setting, ~60 degree horizontal
field of view). As in Feat2GS's per-pixel initialisation, one Gaussian is placed at every pixel of a
``w x h`` grid in each view (``VIEWS * w * h`` = the requested count), on the surface, with an isotropic
scale from the mean squared distance to its 3 nearest neighbours (``knn_log_scales``), identity rotation,
opacity 0.1, random RGB in the DC term and small random SH degree-3 coefficients. The benchmark camera is
the first view at the benchmark resolution, so each Gaussian covers roughly 1-3 pixels (more when the
Gaussian count is small relative to the image).

One step = ``render`` (projection, SH, rasterisation, depth channel on) + an L1 loss to a fixed target +
``backward`` to every Gaussian parameter and the camera pose. Timing: a warm-up step, then the median of
``--steps`` timed steps, wall-clock (``ms_per_step``, ``steps_per_s``) and process CPU time
(``cpu_ms_per_step``, summed over threads). The reference is dense over (pixels x Gaussians per 16-pixel row
of tiles); it is skipped (with a JSON line saying why) when its pair count exceeds ``--max-ref-pairs``.

Usage: ``python benchmarks/perf/render_cpu.py [--steps 5] [--sizes 10000,20000,50000] [--threads N]``.
Timings on a shared machine are noisy. With more runnable processes than cores, libgomp's default
spin-waiting (idle OpenMP workers spin for milliseconds after every parallel torch op or kernel call, taking
the core from the main thread) makes a step 5-15x slower; this script therefore sets
``OMP_WAIT_POLICY=passive`` unless the environment sets it (recorded in each line as ``omp_wait_policy``).
"""

from __future__ import annotations

import os

# Must precede the first import of torch (libgomp reads it once); an explicit setting is respected.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from feat2gs.gaussians import Gaussians, knn_log_scales, rgb_to_sh_dc  # noqa: E402
from feat2gs.render import get_renderer  # noqa: E402
from feat2gs.render.projection import tile_grid, tile_rects  # noqa: E402

VIEWS = 4
HFOV_DEG = 60.0


def look_at_viewmat(eye: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """World-to-camera matrix (OpenCV: x right, y down, z forward) looking from ``eye`` at ``target``."""
    z = target - eye
    z = z / z.norm()
    up = torch.tensor([0.0, -1.0, 0.0])
    x = torch.linalg.cross(up, z)
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    R = torch.stack([x, y, z])  # rows: camera axes in world
    vm = torch.eye(4)
    vm[:3, :3] = R
    vm[:3, 3] = -R @ eye
    return vm


def intrinsics(width: int, height: int) -> torch.Tensor:
    f = 0.5 * width / math.tan(math.radians(HFOV_DEG) / 2)
    return torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def make_scene(n_gaussians: int, seed: int = 0):
    """(Gaussians, viewmats (VIEWS, 4, 4)) of the synthetic per-pixel scene described in the docstring."""
    g = torch.Generator().manual_seed(seed)
    per_view = n_gaussians // VIEWS
    w = max(2, round(math.sqrt(per_view * 4 / 3)))
    h = max(2, per_view // w)
    K = intrinsics(w, h)
    target = torch.tensor([0.0, 0.0, 4.0])
    pts = []
    vms = []
    for v in range(VIEWS):
        a = math.radians(-10 + 20 * v / max(1, VIEWS - 1))
        eye = torch.tensor([4.0 * math.sin(a), 0.1 * v, 4.0 - 4.0 * math.cos(a)])
        vm = look_at_viewmat(eye, target)
        vms.append(vm)
        ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
        rays_c = torch.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1], torch.ones_like(xs)], -1)
        c2w = torch.linalg.inv(vm)
        d = rays_c.reshape(-1, 3) @ c2w[:3, :3].T
        o = c2w[:3, 3]
        # march to the surface z = 4 + 0.25 sin(2x) cos(3y) (a few fixed-point steps)
        t = (4.0 - o[2]) / d[:, 2]
        for _ in range(8):
            p = o + t[:, None] * d
            zs = 4.0 + 0.25 * torch.sin(2 * p[:, 0]) * torch.cos(3 * p[:, 1])
            t = (zs - o[2]) / d[:, 2]
        pts.append(o + t[:, None] * d)
    points = torch.cat(pts)[:n_gaussians]
    n = points.shape[0]
    gs = Gaussians.from_points(points, torch.rand(n, 3, generator=g), knn_log_scales(points), opacity=0.1,
                               sh_degree=3)
    gs.sh_rest = 0.05 * torch.randn(gs.sh_rest.shape, generator=g)
    gs.sh_dc = rgb_to_sh_dc(torch.rand(n, 1, 3, generator=g))
    return gs, torch.stack(vms)


def time_steps(renderer, gs: Gaussians, K, viewmat, width, height, steps: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process-CPU seconds of ``steps`` timed steps (after one warm-up step)."""
    params = [t.clone().requires_grad_(True) for t in (gs.means, gs.log_scales, gs.quats, gs.opacity_logits,
                                                        gs.sh_dc, gs.sh_rest)]
    vm = viewmat.clone().requires_grad_(True)
    target = torch.full((1, 3, height, width), 0.5)
    wall, cpu = [], []
    for i in range(steps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        out = renderer.render(Gaussians(*params), K, vm, width, height, render_depth=True)
        loss = (out.image - target).abs().mean() + 1e-3 * out.depth.mean()
        loss.backward()
        if i > 0:
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        for p in params + [vm]:
            p.grad = None
    return wall, cpu


def pair_count(gs: Gaussians, K, viewmat, width, height) -> int:
    """Pixels x Gaussians the reference evaluates (per row of tiles, the Gaussians touching that row)."""
    from feat2gs.render.projection import project_gaussians
    from feat2gs.render.base import RenderSettings

    with torch.no_grad():
        p = project_gaussians(gs.means, gs.quats, gs.scales, gs.opacities, viewmat, K, width, height,
                              RenderSettings())
        tx, ty = tile_grid(width, height, 16)
        r = tile_rects(p.means2d, p.radii, 16, tx, ty)[0]
        rows = (r[:, 3] - r[:, 1]).clamp_min(0) * (r[:, 0] < r[:, 2])
    return int(rows.sum()) * 16 * width


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--sizes", default="10000,20000,50000")
    ap.add_argument("--resolutions", default="128x96,256x192")
    ap.add_argument("--max-ref-pairs", type=float, default=1.5e8)
    ap.add_argument("--backends", default="cpu,reference")
    ap.add_argument("--threads", type=int, default=0, help="torch/OpenMP threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    wait_policy = os.environ["OMP_WAIT_POLICY"]
    cpu = get_renderer("cpu")
    ref = get_renderer("reference")
    for res in args.resolutions.split(","):
        width, height = (int(v) for v in res.split("x"))
        K = intrinsics(width, height)[None]
        for n in (int(s) for s in args.sizes.split(",")):
            gs, vms = make_scene(n)
            vm = vms[:1]
            base = {"gaussians": len(gs), "width": width, "height": height, "threads": threads,
                    "omp_wait_policy": wait_policy}
            ref_ms = None
            if "reference" in args.backends:
                pairs = pair_count(gs, K, vm, width, height)
                if pairs > args.max_ref_pairs:
                    print(json.dumps({"backend": "reference", **base, "skipped": True, "pairs": pairs,
                                      "reason": f"{pairs:.3g} pixel-Gaussian pairs > --max-ref-pairs "
                                                f"{args.max_ref_pairs:.3g} (the dense reference would take "
                                                "minutes per step)"}), flush=True)
                else:
                    wall, cpu_t = time_steps(ref, gs, K, vm, width, height, max(1, min(args.steps, 2)))
                    ref_ms = 1e3 * statistics.median(wall)
                    print(json.dumps({"backend": "reference", **base, "ms_per_step": round(ref_ms, 1),
                                      "cpu_ms_per_step": round(1e3 * statistics.median(cpu_t), 1),
                                      "steps_per_s": round(1e3 / ref_ms, 3), "pairs": pairs}), flush=True)
            if "cpu" in args.backends:
                wall, cpu_t = time_steps(cpu, gs, K, vm, width, height, args.steps)
                cpu_ms = 1e3 * statistics.median(wall)
                line = {"backend": "cpu", **base, "ms_per_step": round(cpu_ms, 2),
                        "cpu_ms_per_step": round(1e3 * statistics.median(cpu_t), 2),
                        "steps_per_s": round(1e3 / cpu_ms, 2), "steps": args.steps}
                if ref_ms is not None:
                    line["speedup_vs_reference"] = round(ref_ms / cpu_ms, 1)
                print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
