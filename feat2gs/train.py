"""Training of a readout probe: warm-up regression to the initial values, then photometric training with
joint train-pose refinement -- the reference schedule (feat2gs_reference.md section 4), one Adam."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Mapping, Optional, Union

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from probes.features import GaussianFeatures
from probes.readout import Readout

from .config.schema import TrainConfig, check_section
from .errors import DivergedError
from .gaussians import Gaussians
from .geometry.pose import PoseCorrection
from .metrics.image import photometric_loss
from .progress import bar as progress_bar
from .progress import stage_done
from .render.base import Renderer
from .scene import Cameras


def train_config(cfg: Union[TrainConfig, DictConfig, Mapping]) -> TrainConfig:
    """The typed ``train`` section (a ``TrainConfig`` as is; a ``DictConfig``/mapping checked and converted)."""
    if isinstance(cfg, TrainConfig):
        return cfg
    data = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    return check_section(TrainConfig, data, "train")


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


def first_non_finite(tensors: dict[str, torch.Tensor]) -> Optional[str]:
    """The name of the first tensor with a NaN or infinite value, or None."""
    for name, t in tensors.items():
        if t is not None and not bool(torch.isfinite(t).all()):
            return name
    return None


class ProbeTrainer:
    """Owns the optimiser (one Adam over head weights, free parameters and train poses, eps=1e-15).

    ``step(phase, step)`` is one optimisation step (``"warmup"`` or ``"photo"``) and returns its loss.
    Divergence guard: at every logging step (and the last one) the loss and every trained tensor must be
    finite, and the final Gaussians must be before anything is returned; otherwise ``DivergedError`` says
    where and which learning rate to lower.
    """

    def __init__(self, readout: Readout, feats: GaussianFeatures, images: torch.Tensor, cameras: Cameras,
                 renderer: Renderer, cfg: Union[TrainConfig, DictConfig, Mapping], extent: float, seed: int = 0):
        self.readout, self.feats, self.images = readout, feats, images
        self.cameras, self.renderer, self.extent = cameras, renderer, extent
        self.cfg = train_config(cfg)
        self.poses = PoseCorrection(cameras.viewmats.to(images.device), scale=extent).to(images.device)
        groups = [{"params": ps, "name": a, "lr": 0.0} for a, ps in readout.attribute_params().items()]
        groups.append({"params": list(self.poses.parameters()), "name": "pose", "lr": 0.0})
        self.opt = torch.optim.Adam(groups, lr=0.0, eps=1e-15)
        self.generator = torch.Generator().manual_seed(seed)
        self.history: dict[str, list[float]] = {"warmup_loss": [], "photo_loss": []}
        self._K = cameras.K.to(images.device)
        self._order: list[int] = []

    # ------------------------------------------------------------------------------------------ steps
    def _set_warmup_lrs(self, step: int) -> None:
        lr0, lr1 = self.cfg.warmup_lr
        lr = exp_schedule(step, lr0, lr1, self.cfg.warmup_steps)
        heads = set(self.readout.head_names)
        for g in self.opt.param_groups:
            g["lr"] = lr if g["name"] in heads else 0.0

    def _set_photometric_lrs(self, step: int) -> None:
        lr = self.cfg.lr
        pose = self.cfg.pose
        for g in self.opt.param_groups:
            name = g["name"]
            if name == "xyz":
                g["lr"] = exp_schedule(step, lr.xyz * self.extent, lr.xyz_final * self.extent, lr.xyz_decay_steps)
            elif name == "pose":
                g["lr"] = exp_schedule(step, pose.lr, pose.lr_final, pose.decay_steps) if pose.refine else 0.0
            else:
                g["lr"] = getattr(lr, name)

    def _next_view(self) -> int:
        if not self._order:  # one view per step, each view once per epoch, in a seeded random order
            self._order = torch.randperm(self.images.shape[0], generator=self.generator).tolist()
        return self._order.pop()

    def step(self, phase: str, step: int) -> torch.Tensor:
        """One optimisation step of ``phase`` (``"warmup"``: heads regress to the initial values;
        ``"photo"``: the photometric loss on one train view, with train-pose refinement) at schedule
        position ``step``; returns the (detached) loss."""
        if phase == "warmup":
            self._set_warmup_lrs(step)
            loss = self.readout.warmup_loss(self.readout.head_outputs(self.feats))
        elif phase == "photo":
            v = self._next_view()
            self._set_photometric_lrs(step)
            gaussians = self.readout(self.feats)
            viewmat = self.poses(torch.tensor([v]))
            out = self.renderer.render(gaussians, self._K[v:v + 1], viewmat, self.cameras.width,
                                       self.cameras.height)
            loss = photometric_loss(out.image, self.images[v:v + 1], self.cfg.ssim_weight)
            if self.cfg.scale_reg > 0:  # the reference's IUVRGB-only scale regulariser (train.scale_reg)
                loss = loss + self.cfg.scale_reg * self.readout.scale_regulariser(gaussians)
        else:
            raise ValueError(f"unknown training phase {phase!r}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def warmup(self, progress: Optional[tqdm] = None) -> None:
        steps = self.cfg.warmup_steps
        for step in range(steps):
            self._log("warmup_loss", step, steps, self.step("warmup", step), progress)

    def photometric(self, progress: Optional[tqdm] = None) -> None:
        steps = self.cfg.steps
        for step in range(steps):
            self._log("photo_loss", step, steps, self.step("photo", step), progress)

    # ------------------------------------------------------------------------------------ divergence
    def trained_tensors(self) -> dict[str, torch.Tensor]:
        out = {f"{g['name']}[{i}]": p for g in self.opt.param_groups for i, p in enumerate(g["params"])}
        return out

    def check_finite(self, key: str, step: int, loss: Optional[float]) -> None:
        phase = "warm-up" if key == "warmup_loss" else "photometric"
        what = None
        if loss is not None and not math.isfinite(loss):
            what = f"loss {loss}"
        else:
            bad = first_non_finite(self.trained_tensors())
            if bad is not None:
                what = f"non-finite values in {bad.split('[')[0]} parameters"
        if what is not None:
            raise DivergedError(step, phase, what, self._hint(phase))

    @staticmethod
    def _hint(phase: str) -> str:
        if phase == "warm-up":
            return "lower train.warmup_lr"
        return "lower the learning rates (train.lr.*, train.pose.lr)"

    def _log(self, key: str, step: int, steps: int, loss: torch.Tensor, progress: Optional[tqdm]) -> None:
        every = self.cfg.log_every
        if step % every == 0 or step == steps - 1:
            value = loss.item()
            self.history[key].append(value)
            self.check_finite(key, step, value)
            if progress is not None:
                progress.set_postfix({key: f"{value:.4f}"}, refresh=False)
        if progress is not None:
            progress.update(1)

    def run(self, desc: str = "train") -> TrainResult:
        total = self.cfg.warmup_steps + self.cfg.steps
        with progress_bar(total, desc) as bar:
            t = time.perf_counter()
            self.warmup(bar)
            if self.cfg.warmup_steps:
                stage_done("warm-up", time.perf_counter() - t, f"{self.cfg.warmup_steps} steps, loss "
                                                               f"{self.history['warmup_loss'][-1]:.4g}")
            t = time.perf_counter()
            self.photometric(bar)
            if self.cfg.steps:
                stage_done("photometric training", time.perf_counter() - t,
                           f"{self.cfg.steps} steps, loss {self.history['photo_loss'][-1]:.4g}")
        with torch.no_grad():
            final = self.readout(self.feats).detach()
            viewmats = self.poses().detach()
        bad = first_non_finite({"final Gaussians": torch.cat([final.means, final.sh_dc.flatten(1),
                                                               final.sh_rest.flatten(1), final.opacity_logits,
                                                               final.log_scales, final.quats], 1),
                                "train poses": viewmats})
        if bad is not None:
            steps = self.cfg.steps
            phase = "photometric" if steps else "warm-up"
            raise DivergedError(max(steps, self.cfg.warmup_steps) - 1, phase, f"non-finite {bad}",
                                self._hint(phase))
        return TrainResult(final, viewmats, self.history)
