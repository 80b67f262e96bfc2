"""Gaussians as a standard 3DGS ``.ply`` (the layout of the original 3DGS code, read by every viewer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..gaussians import Gaussians
from .atomic import atomic_write


def _fields(n_rest: int) -> list[str]:
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
            + [f"f_rest_{i}" for i in range(n_rest)]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def write_gaussians_ply(path: Path, g: Gaussians) -> None:
    """Raw parameters: log-scales, opacity logits, wxyz quaternions, SH with f_rest channel-major
    (all coefficients of R, then G, then B), as 3DGS writes them."""
    from plyfile import PlyData, PlyElement

    g = g.detach().to("cpu", torch.float32)
    n = len(g)
    rest = g.sh_rest.transpose(1, 2).reshape(n, -1)  # (N, 3*(K-1)) channel-major
    cols = [g.means, torch.zeros(n, 3), g.sh_dc.reshape(n, 3), rest, g.opacity_logits, g.log_scales, g.quats]
    data = torch.cat(cols, dim=1).numpy()
    names = _fields(rest.shape[1])
    arr = np.empty(n, dtype=[(f, "f4") for f in names])
    for i, f in enumerate(names):
        arr[f] = data[:, i]
    atomic_write(path, lambda tmp: PlyData([PlyElement.describe(arr, "vertex")]).write(str(tmp)))


def read_gaussians_ply(path: Path) -> Gaussians:
    from plyfile import PlyData

    try:
        v = PlyData.read(str(path))["vertex"]
    except Exception as e:  # plyfile raises several types for bad files
        raise InputError(str(path), f"not a readable PLY file ({e})") from None
    names = v.data.dtype.names
    n_rest = sum(1 for f in names if f.startswith("f_rest_"))
    missing = [f for f in _fields(n_rest) if f not in names and f not in ("nx", "ny", "nz")]
    if missing:
        raise InputError(str(path), f"not a 3DGS PLY: missing fields {missing[:6]}")
    col = lambda *fs: torch.from_numpy(np.stack([np.asarray(v[f], np.float32) for f in fs], 1))  # noqa: E731
    n = len(v.data)
    rest = col(*[f"f_rest_{i}" for i in range(n_rest)]) if n_rest else torch.zeros(n, 0)
    return Gaussians(
        means=col("x", "y", "z"),
        log_scales=col("scale_0", "scale_1", "scale_2"),
        quats=col("rot_0", "rot_1", "rot_2", "rot_3"),
        opacity_logits=col("opacity"),
        sh_dc=col("f_dc_0", "f_dc_1", "f_dc_2").reshape(n, 1, 3),
        sh_rest=rest.reshape(n, 3, -1).transpose(1, 2).contiguous(),
    )


def write_point_ply(path: Path, points: np.ndarray, colors: np.ndarray) -> None:
    """A coloured point cloud: float32 x, y, z and uchar red, green, blue (colours in [0, 1])."""
    from plyfile import PlyData, PlyElement

    arr = np.empty(len(points), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"),
                                       ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for i, k in enumerate("xyz"):
        arr[k] = points[:, i]
    rgb = np.round(np.clip(colors, 0.0, 1.0) * 255).astype(np.uint8)
    for i, k in enumerate(("red", "green", "blue")):
        arr[k] = rgb[:, i]
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(path))
