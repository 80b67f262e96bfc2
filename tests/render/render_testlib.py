"""Random scenes and helpers shared by the renderer tests."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from feat2gs.gaussians import Gaussians

PARAMS = ("means", "log_scales", "quats", "opacity_logits", "sh_dc", "sh_rest")


def look_at(eye, target, up=(0.0, -1.0, 0.0)) -> torch.Tensor:
    """World-to-camera (OpenCV) matrix looking from ``eye`` at ``target``; float64."""
    eye, target, up = (torch.as_tensor(v, dtype=torch.float64) for v in (eye, target, up))
    z = target - eye
    z = z / z.norm()
    x = torch.linalg.cross(up, z)
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    R = torch.stack([x, y, z])
    vm = torch.eye(4, dtype=torch.float64)
    vm[:3, :3] = R
    vm[:3, 3] = -R @ eye
    return vm


@dataclass
class SceneCase:
    gaussians: Gaussians
    K: torch.Tensor  # (C, 3, 3)
    viewmats: torch.Tensor  # (C, 4, 4)
    width: int
    height: int

    def to(self, *args) -> "SceneCase":
        """dtype and/or device, as ``Tensor.to``."""
        return SceneCase(self.gaussians.to(*args), self.K.to(*args), self.viewmats.to(*args), self.width,
                         self.height)


def random_scene(n: int = 150, cameras: int = 2, width: int = 45, height: int = 37, degree: int = 3,
                 seed: int = 0, aniso: float = 0.8, scale: float = 0.06, spread: float = 0.9,
                 behind: int = 0) -> SceneCase:
    """Gaussians in a ball of radius ``spread`` around the origin, seen by ``cameras`` cameras ~3 units away on
    an arc, with a non-centred principal point. ``aniso`` is the std of the per-axis log-scale jitter;
    ``behind`` extra Gaussians are put behind the first camera. float64 (cast with ``.to``)."""
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g, dtype=torch.float64) * 2 - 1) * spread
    if behind:
        means = torch.cat([means, torch.tensor([[0.0, 0.0, -4.0]], dtype=torch.float64)
                           + 0.3 * torch.randn(behind, 3, generator=g, dtype=torch.float64)])
        n += behind
    log_scales = math.log(scale) + aniso * torch.randn(n, 3, generator=g, dtype=torch.float64)
    gs = Gaussians(
        means=means,
        log_scales=log_scales,
        quats=torch.randn(n, 4, generator=g, dtype=torch.float64),
        opacity_logits=1.5 * torch.randn(n, 1, generator=g, dtype=torch.float64),
        sh_dc=0.8 * torch.randn(n, 1, 3, generator=g, dtype=torch.float64),
        sh_rest=0.3 * torch.randn(n, (degree + 1) ** 2 - 1, 3, generator=g, dtype=torch.float64),
    )
    vms = []
    for c in range(cameras):
        a = math.radians(-25 + 50 * c / max(1, cameras - 1)) if cameras > 1 else 0.0
        eye = (3.0 * math.sin(a), 0.2 * c, -3.0 * math.cos(a))
        vms.append(look_at(eye, (0.05, -0.03, 0.0)))
    f = 0.9 * width
    K = torch.tensor([[f, 0.0, 0.43 * width], [0.0, 1.05 * f, 0.57 * height], [0.0, 0.0, 1.0]],
                     dtype=torch.float64)
    return SceneCase(gs, K.expand(cameras, 3, 3).clone(), torch.stack(vms), width, height)


@dataclass
class Rendered:
    image: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor | None
    radii: torch.Tensor
    grads: dict  # name -> gradient (Gaussian parameters, "viewmats", "background")


def render_and_grad(renderer, case: SceneCase, background=None, render_depth: bool = True, seed: int = 1,
                    wrt_background: bool = False) -> Rendered:
    """Renders and back-propagates a fixed random linear functional of image, alpha and depth."""
    params = {k: getattr(case.gaussians, k).detach().clone().requires_grad_(True) for k in PARAMS}
    vm = case.viewmats.detach().clone().requires_grad_(True)
    bg = None
    if background is not None:
        bg = background.detach().clone().to(case.gaussians.means).requires_grad_(wrt_background)
    out = renderer.render(Gaussians(**params), case.K, vm, case.width, case.height, background=bg,
                          render_depth=render_depth)
    g = torch.Generator().manual_seed(seed)

    def weights(t):  # drawn on the CPU so that every device gets the same loss
        return torch.randn(t.shape, generator=g, dtype=t.dtype).to(t.device)

    loss = (weights(out.image) * out.image).sum() + (weights(out.alpha) * out.alpha).sum()
    if render_depth:
        # the depth is a ratio; weight it by alpha so near-empty pixels do not dominate
        loss = loss + 0.1 * (weights(out.depth) * out.depth * out.alpha.detach()).sum()
    loss.backward()
    grads = {k: torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for k, p in params.items()}
    grads["viewmats"] = vm.grad.detach().clone()
    if wrt_background:
        grads["background"] = bg.grad.detach().clone()
    return Rendered(out.image.detach(), out.alpha.detach(), None if out.depth is None else out.depth.detach(),
                    out.radii, grads)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| (b the reference); 0 when both vanish."""
    nb = b.double().norm().item()
    nd = (a.double() - b.double()).norm().item()
    return nd / nb if nb > 0 else nd
