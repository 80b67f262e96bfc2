"""3D Gaussians: raw parameters everywhere, activations in one place (this module)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

SH_C0 = 0.28209479177387814  # Y_0^0


def rgb_to_sh_dc(rgb: torch.Tensor) -> torch.Tensor:
    """SH DC coefficient whose rendered colour (C0 * dc + 0.5) equals ``rgb``."""
    return (rgb - 0.5) / SH_C0


def sh_dc_to_rgb(dc: torch.Tensor) -> torch.Tensor:
    return dc * SH_C0 + 0.5


def num_sh_coeffs(degree: int) -> int:
    return (degree + 1) ** 2


def sh_degree_of(num_coeffs: int) -> int:
    d = int(round(num_coeffs ** 0.5)) - 1
    if (d + 1) ** 2 != num_coeffs:
        raise ValueError(f"{num_coeffs} is not a valid number of SH coefficients")
    return d


@dataclass
class Gaussians:
    """N Gaussians in raw parameters.

    means (N, 3) world positions; log_scales (N, 3); quats (N, 4) wxyz, not necessarily normalised;
    opacity_logits (N, 1); sh_dc (N, 1, 3); sh_rest (N, K - 1, 3) with K = (degree + 1)^2.
    """

    means: torch.Tensor
    log_scales: torch.Tensor
    quats: torch.Tensor
    opacity_logits: torch.Tensor
    sh_dc: torch.Tensor
    sh_rest: torch.Tensor

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        expect = {"means": (n, 3), "log_scales": (n, 3), "quats": (n, 4), "opacity_logits": (n, 1)}
        for name, shape in expect.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(f"Gaussians.{name}: expected {shape}, got {tuple(getattr(self, name).shape)}")
        if tuple(self.sh_dc.shape) != (n, 1, 3) or self.sh_rest.shape[0] != n or self.sh_rest.shape[2] != 3:
            raise ValueError(f"Gaussians SH: got dc {tuple(self.sh_dc.shape)}, rest {tuple(self.sh_rest.shape)}")
        sh_degree_of(1 + self.sh_rest.shape[1])

    def __len__(self) -> int:
        return int(self.means.shape[0])

    # ---------------------------------------------------------------- activations
    @property
    def scales(self) -> torch.Tensor:
        return torch.exp(self.log_scales)

    @property
    def rotations(self) -> torch.Tensor:
        """Unit quaternions, wxyz."""
        return F.normalize(self.quats, dim=-1)

    @property
    def opacities(self) -> torch.Tensor:
        """Opacities in (0, 1), shape (N,)."""
        return torch.sigmoid(self.opacity_logits[:, 0])

    @property
    def sh(self) -> torch.Tensor:
        """All SH coefficients, (N, K, 3)."""
        return torch.cat([self.sh_dc, self.sh_rest], dim=1)

    @property
    def sh_degree(self) -> int:
        return sh_degree_of(1 + self.sh_rest.shape[1])

    # ---------------------------------------------------------------- helpers
    def map(self, fn) -> "Gaussians":
        return Gaussians(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def detach(self) -> "Gaussians":
        return self.map(lambda t: t.detach())

    def to(self, *args, **kwargs) -> "Gaussians":
        return self.map(lambda t: t.to(*args, **kwargs))

    def subset(self, index: torch.Tensor) -> "Gaussians":
        return self.map(lambda t: t[index])

    @classmethod
    def from_points(cls, points: torch.Tensor, colors: torch.Tensor, log_scales: torch.Tensor,
                    opacity: float = 0.1, sh_degree: int = 3) -> "Gaussians":
        """Reference initial values: identity rotation, constant opacity, RGB colour in the DC term."""
        n = points.shape[0]
        quats = torch.zeros(n, 4, dtype=points.dtype)
        quats[:, 0] = 1.0
        logit = torch.logit(torch.tensor(opacity, dtype=points.dtype))
        return cls(
            means=points.clone(),
            log_scales=log_scales.clone(),
            quats=quats,
            opacity_logits=torch.full((n, 1), float(logit), dtype=points.dtype),
            sh_dc=rgb_to_sh_dc(colors.to(points.dtype)).reshape(n, 1, 3),
            sh_rest=torch.zeros(n, num_sh_coeffs(sh_degree) - 1, 3, dtype=points.dtype),
        )


def knn_log_scales(points: torch.Tensor, k: int = 3, min_dist: float = 1e-7) -> torch.Tensor:
    """Isotropic log-scale from the mean squared distance to the k nearest neighbours (3DGS init).

    scale = sqrt(mean_k |p - q_k|^2), returned as (N, 3) log-scales. Uses a KD-tree (scipy).
    """
    from scipy.spatial import cKDTree

    pts = points.detach().double().cpu().numpy()
    n = pts.shape[0]
    kk = min(k, n - 1)
    if kk < 1:
        return torch.zeros(n, 3, dtype=points.dtype)
    dist, _ = cKDTree(pts).query(pts, k=kk + 1)
    d2 = torch.from_numpy(dist[:, 1:] ** 2).mean(dim=1).clamp_min(min_dist ** 2)
    return (0.5 * torch.log(d2)).to(points.dtype)[:, None].expand(n, 3).contiguous()
