"""Training of a readout probe: warm-up regression to the initial values, then photometric training with
joint train-pose refinement -- the reference schedule (feat2gs_reference.md section 4), one Adam."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from probes.features import GaussianFeatures
from probes.readout import Readout

from .gaussians import Gaussians
from .geometry.pose import PoseCorrection
from .metrics.image import photometric_loss
from .render.base import Renderer
from .scene import Cameras


def scene_extent(cameras: Cameras, fallback: float = 1.0) -> float:
    """1.1 x the largest distance of the camera centres from their mean (3DGS' ``spatial_lr_scale``)."""
    c = cameras.centers
    r = float((c - c.mean(0)).norm(dim=1).max()) * 1.1
    return r if r > 1e-8 else fallback


def exp_schedule(step: int, lr0: float, lr1: float, steps: int) -> float:
    """Log-linear interpolation from lr0 (step 0) to lr1 (step >= steps)."""
    if steps <= 0:
        return lr1
    t = min(max(step / steps, 0.0), 1.0)
    return lr0 * (lr1 / lr0) ** t


@dataclass
class TrainResult:
    gaussians: Gaussians  # final Gaussians (detached)
    viewmats: torch.Tensor  # refined train poses (V, 4, 4)
    history: dict[str, list[float]] = field(default_factory=dict)


class ProbeTrainer:
    """Owns the optimiser (one Adam over head weights, free parameters and train poses, eps=1e-15)."""

    def __init__(self, readout: Readout, feats: GaussianFeatures, images: torch.Tensor, cameras: Cameras,
                 renderer: Renderer, cfg: DictConfig, extent: float, seed: int = 0):
        self.readout, self.feats, self.images = readout, feats, images
        self.cameras, self.renderer, self.cfg, self.extent = cameras, renderer, cfg, extent
        self.poses = PoseCorrection(cameras.viewmats.to(images.device), scale=extent).to(images.device)
        groups = [{"params": ps, "name": a, "lr": 0.0} for a, ps in readout.attribute_params().items()]
        groups.append({"params": list(self.poses.parameters()), "name": "pose", "lr": 0.0})
        self.opt = torch.optim.Adam(groups, lr=0.0, eps=1e-15)
        self.generator = torch.Generator().manual_seed(seed)
        self.history: dict[str, list[float]] = {"warmup_loss": [], "photo_loss": []}
        self.scale_reg = float(cfg.get("scale_reg", 0.0) or 0.0)

    # ------------------------------------------------------------------------------------------ warm-up
    def warmup(self, progress: Optional[tqdm] = None) -> None:
        steps = int(self.cfg.warmup_steps)
        lr0, lr1 = (float(x) for x in self.cfg.warmup_lr)
        heads = set(self.readout.head_names)
        for step in range(steps):
            lr = exp_schedule(step, lr0, lr1, steps)
            for g in self.opt.param_groups:
                g["lr"] = lr if g["name"] in heads else 0.0
            loss = self.readout.warmup_loss(self.readout.head_outputs(self.feats))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self._log("warmup_loss", step, steps, loss, progress)

    # ------------------------------------------------------------------------------------- photometric
    def _set_photometric_lrs(self, step: int) -> None:
        lr = self.cfg.lr
        pose = self.cfg.pose
        for g in self.opt.param_groups:
            name = g["name"]
            if name == "xyz":
                g["lr"] = exp_schedule(step, lr.xyz * self.extent, lr.xyz_final * self.extent,
                                       int(lr.xyz_decay_steps))
            elif name == "pose":
                g["lr"] = exp_schedule(step, pose.lr, pose.lr_final, int(pose.decay_steps)) if pose.refine else 0.0
            else:
                g["lr"] = float(lr[name])

    def photometric(self, progress: Optional[tqdm] = None) -> None:
        steps = int(self.cfg.steps)
        V = self.images.shape[0]
        K = self.cameras.K.to(self.images.device)
        W, H = self.cameras.width, self.cameras.height
        order: list[int] = []
        for step in range(steps):
            if not order:  # one view per step, each view once per epoch, in a seeded random order
                order = torch.randperm(V, generator=self.generator).tolist()
            v = order.pop()
            self._set_photometric_lrs(step)
            gaussians = self.readout(self.feats)
            viewmat = self.poses(torch.tensor([v]))
            out = self.renderer.render(gaussians, K[v:v + 1], viewmat, W, H)
            loss = photometric_loss(out.image, self.images[v:v + 1], float(self.cfg.ssim_weight))
            if self.scale_reg > 0:
                loss = loss + self.scale_reg * self.readout.scale_regulariser(gaussians)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self._log("photo_loss", step, steps, loss, progress)

    def _log(self, key: str, step: int, steps: int, loss: torch.Tensor, progress: Optional[tqdm]) -> None:
        every = max(int(self.cfg.log_every), 1)
        if step % every == 0 or step == steps - 1:
            self.history[key].append(loss.item())
            if progress is not None:
                progress.set_postfix({key: f"{self.history[key][-1]:.4f}"}, refresh=False)
        if progress is not None:
            progress.update(1)

    def run(self, desc: str = "train") -> TrainResult:
        total = int(self.cfg.warmup_steps) + int(self.cfg.steps)
        with tqdm(total=total, desc=desc, leave=False, disable=None) as bar:
            self.warmup(bar)
            self.photometric(bar)
        with torch.no_grad():
            final = self.readout(self.feats).detach()
            viewmats = self.poses().detach()
        return TrainResult(final, viewmats, self.history)
