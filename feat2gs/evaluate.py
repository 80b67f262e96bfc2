"""Evaluation: test-pose refinement, then image metrics over valid pixels (and 3D metrics when there is GT)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from .config.schema import EvalConfig
from .gaussians import Gaussians
from .geometry.pose import PoseCorrection
from .metrics.image import LPIPSUnavailable, MaskedLPIPS, masked_l1, mean_color_psnr, psnr, ssim
from .render.base import Renderer
from .scene import Scene


@dataclass
class PoseRefinement:
    viewmat: torch.Tensor  # (4, 4) best pose
    loss_initial: float
    loss_best: float
    best_step: int


def refine_test_pose(renderer: Renderer, gaussians: Gaussians, K: torch.Tensor, viewmat: torch.Tensor,
                     image: torch.Tensor, mask: torch.Tensor, steps: int, lr_rot: float, lr_trans: float,
                     extent: float) -> PoseRefinement:
    """Adam on a pose correction minimising the masked L1 between render and image; returns the pose with
    the lowest loss seen (each candidate is scored before the update that follows it, and the last pose
    is scored too -- no off-by-one). Gaussians stay fixed."""
    H, W = image.shape[-2:]
    g = gaussians.detach()
    pose = PoseCorrection(viewmat[None], scale=extent).to(image.device)
    opt = torch.optim.Adam([{"params": [pose.rot], "lr": lr_rot}, {"params": [pose.trans], "lr": lr_trans}],
                           eps=1e-15)
    best, best_vm, best_step, first = float("inf"), viewmat, 0, None
    for step in range(steps + 1):
        vm = pose()
        with torch.set_grad_enabled(step < steps):
            out = renderer.render(g, K[None], vm, W, H)
            loss = masked_l1(out.image, image[None], mask[None])
        value = loss.item()
        first = value if first is None else first
        if value < best:
            best, best_vm, best_step = value, vm[0].detach().clone(), step
        if step < steps:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return PoseRefinement(best_vm, first, best, best_step)


VIEW_FIELDS = ("name", "psnr", "ssim", "lpips", "mean_color_psnr", "valid_fraction", "psnr_full", "ssim_full",
               "psnr_no_pose_refine", "mean_color_psnr_full")
SUMMARY_FIELDS = VIEW_FIELDS[1:]


@dataclass
class ViewScore:
    """Scores of one test view: masked (over the evaluation mask) and full-image, after test-pose refinement,
    and the masked PSNR at the dataset pose before refinement."""

    name: str
    psnr: float
    ssim: float
    lpips: Optional[float]
    mean_color_psnr: float
    valid_fraction: float
    psnr_full: float = float("nan")
    ssim_full: float = float("nan")
    psnr_no_pose_refine: float = float("nan")
    mean_color_psnr_full: float = float("nan")
    pose: Optional[PoseRefinement] = None

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in VIEW_FIELDS}
        if self.pose is not None:
            d.update(pose_loss_initial=self.pose.loss_initial, pose_loss_best=self.pose.loss_best,
                     pose_best_step=self.pose.best_step)
        return d


@dataclass
class EvalResult:
    views: list[ViewScore]
    renders: torch.Tensor  # (Vt, 3, H, W)
    lpips_status: str  # "ok" or the reason LPIPS is unavailable
    summary: dict = field(default_factory=dict)


def build_lpips(net: str, device: str) -> tuple[Optional[MaskedLPIPS], str]:
    if net == "none":
        return None, "disabled (eval.lpips=none)"
    try:
        return MaskedLPIPS(net, device=device), "ok"
    except LPIPSUnavailable as e:
        return None, str(e)


def evaluate_views(renderer: Renderer, gaussians: Gaussians, test: Scene, masks: torch.Tensor,
                   cfg: EvalConfig, extent: float, mean_color: torch.Tensor,
                   lpips_metric: Optional[MaskedLPIPS] = None, lpips_status: str = "disabled") -> EvalResult:
    """Refine each test pose, render, and score over the valid pixels ``masks`` (Vt, H, W)."""
    device = gaussians.means.device
    K_all = test.cameras.K.to(device)
    views, renders = [], []
    for i in range(test.num_views):
        image, mask = test.images[i].to(device), masks[i].to(device)
        vm = test.cameras.viewmats[i].to(device)
        with torch.no_grad():
            before = renderer.render(gaussians.detach(), K_all[i:i + 1], vm[None], test.width, test.height)
        psnr_before = float(psnr(before.image[0].clamp(0, 1), image, mask)[0]) if mask.any() else float("nan")
        ref = None
        if cfg.pose_steps > 0 and mask.any():
            ref = refine_test_pose(renderer, gaussians, K_all[i], vm, image, mask, cfg.pose_steps,
                                   cfg.pose_lr_r, cfg.pose_lr_t, extent)
            vm = ref.viewmat
        with torch.no_grad():
            out = renderer.render(gaussians.detach(), K_all[i:i + 1], vm[None], test.width, test.height)
        render = out.image[0].clamp(0, 1)
        has = bool(mask.any())  # a view without evaluation pixels gets no masked score (NaN, skipped in means)
        nan = float("nan")
        lp = None if lpips_metric is None or not has else float(lpips_metric(render, image, mask)[0])
        views.append(ViewScore(
            name=test.image_names[i],
            psnr=float(psnr(render, image, mask)[0]) if has else nan,
            ssim=float(ssim(render, image, mask)[0]) if has else nan,
            lpips=lp,
            mean_color_psnr=float(mean_color_psnr(image, mean_color.to(device), mask)[0]) if has else nan,
            valid_fraction=float(mask.float().mean()),
            psnr_full=float(psnr(render, image)[0]),
            ssim_full=float(ssim(render, image)[0]),
            psnr_no_pose_refine=psnr_before,
            mean_color_psnr_full=float(mean_color_psnr(image, mean_color.to(device))[0]),
            pose=ref,
        ))
        renders.append(render.cpu())
    summary = {k: _mean([getattr(v, k) for v in views]) for k in SUMMARY_FIELDS}
    summary["lpips_status"] = lpips_status
    return EvalResult(views, torch.stack(renders), lpips_status, summary)


def _mean(values: list) -> Optional[float]:
    vals = [v for v in values if v is not None and v == v]  # None and NaN (no valid pixel) are skipped
    return sum(vals) / len(vals) if vals else None
