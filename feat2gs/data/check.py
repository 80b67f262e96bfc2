"""``feat2gs data check``: the facts of a scene folder and what looks wrong, from its cameras (no image is
decoded unless ``decode=True``).

Facts: format, views, image size, intrinsics (range of fx, fy, cx, cy), depth range, scene scale (mean distance
of the camera centres from their centroid, and the largest distance), the splits the dataset ships, whether it has
masks / GT depth / sparse or GT points, and the loader's notes (undistortion, skipped files).

Warnings: the loader's (skipped files), principal points outside the image, coincident camera centres, no depth
range, fewer than 2 views, and views that share no field of view with any other view: a 9x9 grid of pixels of each
view, placed at the middle of its depth range (else at the depth of the sparse points' median, else of the point
closest to all optical axes), must land in front of and inside at least one other view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch

from .catalogue import SceneCatalogue
from .formats import open_scene


@dataclass
class CheckReport:
    path: str
    facts: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{k}: {v}" for k, v in self.facts.items()]
        out += [f"warning: {w}" for w in self.warnings] or ["warnings: none"]
        return out


def _range(t: torch.Tensor) -> str:
    lo, hi = float(t.min()), float(t.max())
    return f"{lo:.6g}" if abs(hi - lo) <= 1e-9 * max(1.0, abs(hi)) else f"{lo:.6g} .. {hi:.6g}"


def looked_at_point(cams) -> torch.Tensor:
    """The point closest to every optical axis (least squares), pulled weakly towards the centroid of the
    centres moved one scene scale along the mean viewing direction (which it is for parallel axes)."""
    c = cams.centers.double()
    d = cams.viewmats[:, 2, :3].double()
    d = d / d.norm(dim=1, keepdim=True)
    scale = float((c - c.mean(0)).norm(dim=1).mean()) or 1.0
    prior = c.mean(0) + scale * d.mean(0)
    P = torch.eye(3, dtype=torch.float64)[None] - d[:, :, None] * d[:, None, :]  # projectors across each axis
    lam = 1e-3 * len(c)
    A = P.sum(0) + lam * torch.eye(3, dtype=torch.float64)
    b = (P @ c[:, :, None]).sum(0)[:, 0] + lam * prior
    return torch.linalg.solve(A, b).float()


def lonely_views(cat: SceneCatalogue, grid: int = 9) -> list[int]:
    """Views whose sample points (see the module docstring) fall inside no other view."""
    cams = cat.cameras
    V = len(cams)
    if V < 2:
        return []
    if cat.depth_range is not None:
        depth = cat.depth_range.mean(1)
    else:
        centre = cat.sparse_points.median(0).values if cat.sparse_points is not None and len(cat.sparse_points) \
            else looked_at_point(cams)
        depth = cams.project(centre[None].float())[1][:, 0].abs().clamp_min(1e-6)
    # the pixel centres of the cameras resized to grid x grid are the grid of sampled pixels
    pts = cams.resized(grid, grid).unproject(depth[:, None, None].expand(V, grid, grid).float())  # (V, g, g, 3)
    lonely = []
    for v in range(V):
        others = [u for u in range(V) if u != v]
        uv, z = cams.subset(others).project(pts[v].reshape(-1, 3))
        inside = (z > 0) & (uv[..., 0] >= 0) & (uv[..., 0] <= cams.width) & (uv[..., 1] >= 0) & \
            (uv[..., 1] <= cams.height)
        if not inside.any():
            lonely.append(v)
    return lonely


def check_scene(path: Union[str, Path], format: Optional[str] = None, decode: bool = False,
                **options) -> CheckReport:
    """Open a scene (InputError when it cannot be read) and report its facts and warnings."""
    cat = open_scene(path, format, **options)
    cams = cat.cameras
    K = cams.K
    c = cams.centers.double()
    spread = (c - c.mean(0)).norm(dim=1)
    facts: dict[str, Any] = {
        "format": cat.format + (f" (cameras from {cat.meta['inner_format']})" if "inner_format" in cat.meta else ""),
        "scene": cat.name,
        "views": cat.num_views,
        "image size": f"{cat.width}x{cat.height}",
        "intrinsics": f"fx {_range(K[:, 0, 0])}, fy {_range(K[:, 1, 1])}, cx {_range(K[:, 0, 2])}, "
                      f"cy {_range(K[:, 1, 2])} px",
        "depth range": "unknown" if cat.depth_range is None else
        f"near {_range(cat.depth_range[:, 0])}, far {_range(cat.depth_range[:, 1])} ({cat.units})",
        "scene scale": f"camera centres {float(spread.mean()):.4g} from their centroid on average, "
                       f"{float(torch.cdist(c, c).max()):.4g} apart at most ({cat.units})",
        "splits": ", ".join(f"{n} ({len(s.get('train', []))} train / {len(s.get('test', []))} test)"
                            for n, s in cat.meta.get("splits", {}).items()) or "none (split rules apply)",
        "masks": "yes" if cat.has_masks else "no",
        "GT depth": "yes" if cat.has_depths else "no",
        "points": ", ".join(k for k, t in (("sparse", cat.sparse_points), ("GT", cat.points)) if t is not None)
                  or "none",
    }
    if cat.meta.get("undistorted"):
        facts["undistortion"] = "distorted cameras are undistorted on load (invalid pixels masked)"
    warnings = list(cat.warnings)
    if cat.num_views < 2:
        warnings.append(f"only {cat.num_views} view(s): a probe needs train and test views")
    off = ((K[:, 0, 2] < 0) | (K[:, 0, 2] > cat.width) | (K[:, 1, 2] < 0) | (K[:, 1, 2] > cat.height)).nonzero()
    if len(off):
        warnings.append(f"{len(off)} view(s) have the principal point outside the image (e.g. "
                        f"{cat.image_names[int(off[0])]}): intrinsics for another image size?")
    if cat.num_views > 1 and float(torch.cdist(c, c).max()) < 1e-9:
        warnings.append("all camera centres coincide (no baseline)")
    if cat.depth_range is None:
        warnings.append("no depth range (initialisers that need one estimate it)")
    lonely = lonely_views(cat)
    if lonely:
        names = ", ".join(cat.image_names[i] for i in lonely[:5])
        warnings.append(f"{len(lonely)} view(s) see nothing in common with any other view: {names}"
                        f"{' ...' if len(lonely) > 5 else ''}")
    if decode:
        for i in range(cat.num_views):
            cat.load([i])  # raises InputError naming a file that does not decode
        facts["decoded"] = f"all {cat.num_views} views decode"
    return CheckReport(str(path), facts, warnings)
