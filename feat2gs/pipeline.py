"""The probe, stage by stage: scene -> split -> initialisation -> features -> readout -> training ->
evaluation -> run folder.

``prepare_scene`` (scene, split, initialisation, visibility masks) depends only on the scene/split/init
config and is shared by every backbone and mode; ``prepare_features`` depends on the backbone too and is
shared by the three modes. Sweeps (``feat2gs demo``, benchmark suites) pass them in to avoid recomputing.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import DictConfig, OmegaConf

from probes.features import GaussianFeatures
from probes.readout import Readout

from .data import load_scene, make_split
from .errors import InputError
from .evaluate import EvalResult, build_lpips, evaluate_views
from .features import PreparedFeatures, prepare_features, write_feature_visualisation
from .gaussians import Gaussians, knn_log_scales
from .geometry.visibility import visibility_masks
from .init import build_initialiser
from .init.base import PointInit
from .io.images import write_image
from .io.ply import write_gaussians_ply
from .metrics.points import point_metrics
from .posefree.reconstruction import posefree_scenes
from .render import get_renderer
from .run import RunDir, default_run_name, seed_everything
from .scene import Scene, Split
from .train import ProbeTrainer, TrainResult, scene_extent


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device", "cuda requested but no CUDA device is available")
    return name


# ------------------------------------------------------------------------------------------ scene stage
@dataclass
class PreparedScene:
    scene: Scene  # all views at the working resolution
    split: Split
    train: Scene
    test: Scene
    init: PointInit  # train views, on the Gaussian grid (pooled by init.block)
    init_gaussians: Gaussians
    test_masks: torch.Tensor  # (Vt, H, W) valid pixels of the test views
    extent: float
    gt: Optional[PointInit] = None  # clean GT points on the Gaussian grid, when the scene has GT depth
    info: dict[str, Any] = field(default_factory=dict)


def load_working_scene(cfg: DictConfig) -> Scene:
    options = OmegaConf.to_container(cfg.scene.options, resolve=True) or {}
    scene = load_scene(str(cfg.scene.path), **options)
    if cfg.scene.long_side:
        scene = scene.resized_long_side(int(cfg.scene.long_side), int(cfg.scene.multiple or 1))
    return scene


def split_from_config(cfg: DictConfig, scene: Scene) -> Split:
    s = cfg.split
    return make_split(scene, int(s.n_train), test=str(s.test), n_test=s.n_test,
                      train=None if s.train is None else list(s.train),
                      test_indices=None if s.test_indices is None else list(s.test_indices))


def prepare_scene(cfg: DictConfig) -> PreparedScene:
    scene = load_working_scene(cfg)
    split = split_from_config(cfg, scene)
    train, test = scene.subset(split.train), scene.subset(split.test)
    init_opts = OmegaConf.to_container(cfg.init.options, resolve=True) or {}
    block = int(cfg.init.block)
    initialiser = build_initialiser(str(cfg.init.name), **init_opts)
    full_init = initialiser(train)
    gt = None
    if train.depths is not None:  # GT points in the dataset frame (geometry metrics align by sim(3))
        gt = build_initialiser("dataset")(train).pooled(block)
    poses = None
    if getattr(initialiser, "pose_free", False):  # recovered train cameras, registered test cameras
        train, test, poses = posefree_scenes(initialiser, full_init, train, test)
    init = full_init.pooled(block)
    pts, cols = init.points[init.valid], init.colors[init.valid]
    init_gaussians = Gaussians.from_points(pts, cols, knn_log_scales(pts), opacity=float(cfg.probe.init_opacity),
                                           sh_degree=int(cfg.probe.sh_degree))
    masks = visibility_masks(full_init, test, train=train)
    extent = scene_extent(train.cameras, fallback=float(init.depth[init.valid].median()))
    info = {"scene": scene.name, "views": scene.num_views, "resolution": [scene.width, scene.height],
            "train_views": [scene.image_names[i] for i in split.train],
            "test_views": [scene.image_names[i] for i in split.test], "split_rule": split.rule,
            "gaussians": len(init_gaussians), "grid": list(init.valid.shape[1:]), "extent": extent,
            "units": scene.units, "init": full_init.method, "init_meta": full_init.meta,
            "test_valid_fraction": float(masks.float().mean()), "poses": poses}
    return PreparedScene(scene, split, train, test, init, init_gaussians, masks, extent, gt, info)


# ------------------------------------------------------------------------------------------- run stage
@dataclass
class ProbeRun:
    path: Path
    metrics: dict[str, Any]
    train: TrainResult
    eval: EvalResult


def geometry_metrics(prep: PreparedScene, g: Gaussians) -> Optional[dict]:
    """Acc / Comp / Dist of the Gaussian means against the clean GT points of the same pixels."""
    if prep.gt is None:
        return None
    corr = prep.gt.valid[prep.init.valid]  # Gaussians whose pixel has GT
    if not corr.any():
        return None
    gt_pts = prep.gt.points[prep.init.valid][corr]
    return point_metrics(g.means[corr], gt_pts, align=True, corresponding=True, units=prep.scene.units)


def run_probe(cfg: DictConfig, prep: Optional[PreparedScene] = None, feats: Optional[PreparedFeatures] = None,
              run_name: Optional[str] = None) -> ProbeRun:
    """One probe run end to end; writes the run folder and returns its metrics."""
    seed = int(cfg.seed)
    run = RunDir.create(str(cfg.output.root), run_name or cfg.output.name or default_run_name(cfg), cfg, seed)
    try:
        seed_everything(seed)
        device = resolve_device(str(cfg.device))
        with run.timer("prepare_scene"):
            prep = prep or prepare_scene(cfg)
        with run.timer("features"):
            feats = feats or prepare_features(cfg, prep, device)
        renderer = get_renderer(str(cfg.render.backend))
        seed_everything(seed)
        readout = Readout(str(cfg.probe.mode), feats.features.dim, prep.init_gaussians,
                          hidden=int(cfg.probe.hidden)).to(device)
        images = prep.train.images.to(device)
        trainer = ProbeTrainer(readout, _to(feats.features, device), images, prep.train.cameras, renderer,
                               cfg.train, prep.extent, seed)
        with run.timer("train"):
            result = trainer.run(desc=f"{cfg.backbone.name}/{cfg.probe.mode}")
        mean_color = prep.train.images.mean(dim=(0, 2, 3))
        lpips_metric, lpips_status = build_lpips(str(cfg.eval.lpips), device)
        with run.timer("evaluate"):
            ev = evaluate_views(renderer, result.gaussians, prep.test, prep.test_masks, cfg.eval, prep.extent,
                                mean_color, lpips_metric, lpips_status)
        metrics = {
            "scene": prep.info, "features": feats.info, "renderer": renderer.name,
            "mode": str(cfg.probe.mode), "backbone": str(cfg.backbone.name), "poses": prep.info.get("poses"),
            "nvs": ev.summary, "views": [v.as_dict() for v in ev.views],
            "geometry": geometry_metrics(prep, result.gaussians),
            "train": {"final_photo_loss": (result.history["photo_loss"] or [None])[-1],
                      "history": result.history},
        }
        with run.timer("write"):
            write_outputs(run, cfg, prep, result, ev)
            if not feats.info.get("per_pixel"):
                write_feature_visualisation(run.path / "features.png", feats, prep.train.images)
        run.write_json("metrics.json", metrics)
        run.finish("complete")
        return ProbeRun(run.path, metrics, result, ev)
    except BaseException as e:
        run.finish("failed", error="".join(traceback.format_exception_only(type(e), e)).strip())
        raise


def write_outputs(run: RunDir, cfg: DictConfig, prep: PreparedScene, result: TrainResult, ev: EvalResult) -> None:
    write_gaussians_ply(run.path / "gaussians.ply", result.gaussians)
    torch.save({"train_viewmats": result.viewmats.cpu(),
                "test_viewmats": torch.stack([v.pose.viewmat.cpu() if v.pose else prep.test.cameras.viewmats[i]
                                              for i, v in enumerate(ev.views)])},
               run.path / "poses.pt")
    if cfg.eval.save_renders:
        out = run.path / "renders"
        out.mkdir()
        for i, v in enumerate(ev.views):
            stem = Path(v.name).stem
            write_image(out / f"{stem}_render.png", ev.renders[i])
            write_image(out / f"{stem}_gt.png", prep.test.images[i])
            write_image(out / f"{stem}_mask.png", prep.test_masks[i].float()[None].expand(3, -1, -1))


def _to(feats: GaussianFeatures, device: str) -> GaussianFeatures:
    if device == "cpu":
        return feats
    return GaussianFeatures(feats.tokens.to(device), feats.index.to(device), feats.weight.to(device))
