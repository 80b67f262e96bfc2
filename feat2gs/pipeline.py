"""The probe, stage by stage: scene -> split -> initialisation -> features -> readout -> training ->
evaluation -> run folder.

``prepare_scene`` (scene, split, initialisation, visibility masks) depends only on the scene/split/init
config and is shared by every backbone and mode; ``prepare_features`` depends on the backbone too and is
shared by the three modes. Sweeps (``feat2gs demo``, benchmark suites) pass them in to avoid recomputing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
from omegaconf import DictConfig

from probes.features import GaussianFeatures
from probes.readout import Readout

from .config import Config, ConfigLike, as_typed
from .config.backbones import backbone_label
from .data import SceneCatalogue, open_scene, write_colmap, write_transforms
from .data.frame import Frame, apply_frame, scene_frame
from .data.split import named_split
from .device import resolve_device
from .errors import InputError
from .evaluate import EvalResult, build_lpips, evaluate_views
from .features import PreparedFeatures, prepare_features, write_feature_visualisation
from .gaussians import Gaussians, knn_log_scales
from .evalmask import EvalMask, compute_eval_mask
from .geometry.visibility import erode
from .init import build_initialiser
from .init.base import PointInit
from .io.images import write_image
from .io.ply import write_gaussians_ply
from .metrics.points import point_metrics
from .posefree.reconstruction import posefree_scenes
from .render import get_renderer
from .run import RunDir, default_run_name, seed_everything
from .run_warnings import loss_warnings, protocol_warnings, score_warnings
from .scene import Cameras, Scene, Split
from .scene_cache import scene_digest, scene_stage_cache, stage_key
from .train import ProbeTrainer, TrainResult, scene_extent


# ------------------------------------------------------------------------------------------ scene stage
@dataclass
class PreparedScene:
    scene: Scene  # the views of the split (train, then test) at the working resolution, in the normalised frame
    split: Split
    train: Scene
    test: Scene
    init: PointInit  # train views, on the Gaussian grid (stride init.block)
    init_gaussians: Gaussians
    test_masks: torch.Tensor  # (Vt, H, W) the evaluation mask: the test pixels every run is scored on
    extent: float
    gt: Optional[PointInit] = None  # clean GT points on the Gaussian grid, when the scene has GT depth
    info: dict[str, Any] = field(default_factory=dict)
    frame: Optional[Frame] = None


def open_working_scene(cfg: ConfigLike) -> SceneCatalogue:
    """The scene's catalogue (cameras, names, files; no pixels decoded) from ``cfg.scene``."""
    sc = as_typed(cfg).scene
    options = dict(sc.options or {})
    fmt = sc.format or None
    legacy = options.pop("format", None)  # scene.options.format, the undocumented key of earlier versions
    if legacy and fmt and legacy != fmt:
        raise InputError("scene.format", f"scene.format={fmt} but scene.options.format={legacy}; give scene.format")
    return open_scene(sc.path, fmt or legacy, **options)


def load_working_scene(cfg: ConfigLike, views: Optional[Sequence[int]] = None,
                       catalogue: Optional[SceneCatalogue] = None) -> Scene:
    """``views`` of the scene (default all), decoded and resized on load to the working resolution, mapped to
    the normalised frame (``scene.normalize``; the frame uses every camera of the catalogue) and, for scenes with
    object masks, with the background blacked out (``scene.background``)."""
    cfg = as_typed(cfg)
    catalogue = catalogue or open_working_scene(cfg)
    scene = catalogue.load(views, cfg.scene.long_side or None, cfg.scene.multiple)
    return to_working_frame(cfg, scene, catalogue.cameras)


def to_working_frame(cfg: ConfigLike, scene: Scene, all_cameras: Optional[Cameras] = None) -> Scene:
    sc = as_typed(cfg).scene
    frame = scene_frame(scene, sc.normalize, cameras=all_cameras)
    scene = apply_frame(scene, frame)
    scene.meta["frame"] = frame.as_dict()  # also for the identity frame (apply_frame returns the scene as is)
    if scene.masks is not None and sc.background == "black":
        scene = mask_background(scene, sc.mask_erosion)
    return scene


def mask_background(scene: Scene, erosion: int) -> Scene:
    """Object-centric scenes, as the reference: every image multiplied by its (eroded) object mask, i.e. the
    subject on a black background; the masks become the eroded ones."""
    if erosion < 0:
        raise InputError("scene.mask_erosion", f"must be >= 0, got {erosion}")
    masks = erode(scene.masks, erosion)
    meta = {**scene.meta, "background": {"mode": "black", "mask_erosion": erosion}}
    return replace(scene, images=scene.images * masks[:, None].float(), masks=masks, meta=meta)


def split_from_config(cfg: ConfigLike, scene: Union[Scene, SceneCatalogue]) -> Split:
    """The split (``split.name`` and friends) of a scene or catalogue: cameras and the dataset's own splits only."""
    s = as_typed(cfg).split
    return named_split(scene, s.name, s.n_train, test=s.test, n_test=s.n_test,
                       train=None if s.train is None else list(s.train),
                       test_indices=None if s.test_indices is None else list(s.test_indices))


def _scene_stage(cfg: Config, scene: Scene, split: Split, train: Scene, test: Scene
                 ) -> tuple[PointInit, EvalMask, bool, Optional[tuple[Cameras, dict]]]:
    """The initialisation of the train views and the evaluation mask, through the on-disk scene-stage cache.
    ``split`` indexes ``scene`` (which holds just the split's views, train then test). For a pose-free
    initialiser also the recovered train + registered test cameras and the pose metrics (else None); its
    evaluation mask is computed with those cameras."""
    init_opts = dict(cfg.init.options or {})
    ev = cfg.eval
    mask_opts = {"method": ev.mask, "rel_tol": float(ev.mask_rel_tol), "mvs_rel_tol": float(ev.mask_mvs_rel_tol),
                 "mvs_options": dict(ev.mask_mvs_options or {})}
    key = stage_key({"scene": scene_digest(scene), "train": list(split.train), "test": list(split.test),
                     "init": cfg.init.name, "init_options": init_opts, "eval_mask": mask_opts})

    def compute() -> dict:
        initialiser = build_initialiser(cfg.init.name, **init_opts)
        init = initialiser(train)
        out: dict[str, Any] = {}
        mask_scene = scene
        if getattr(initialiser, "pose_free", False):
            train_pf, test_pf, poses = posefree_scenes(initialiser, init, train, test)
            cams = Cameras(torch.cat([train_pf.cameras.K, test_pf.cameras.K]),
                           torch.cat([train_pf.cameras.viewmats, test_pf.cameras.viewmats]), scene.width, scene.height)
            mask_scene = replace(scene, cameras=cams, depths=None)  # the mask from the recovered geometry
            out.update(cams_K=cams.K, cams_viewmats=cams.viewmats, poses_json=json.dumps(poses, default=str))
        em = compute_eval_mask(mask_scene, split, **mask_opts)
        return {**out, "points": init.points, "valid": init.valid, "colors": init.colors, "depth": init.depth,
                "confidence": init.confidence, "method": init.method,
                "meta_json": json.dumps(init.meta, default=str),
                "mask": em.masks, "mask_method": em.method, "mask_meta_json": json.dumps(em.meta, default=str)}

    v, hit = scene_stage_cache(cfg.cache.dir_scenes, cfg.cache.scenes).get_or_compute(key, compute)
    posefree = None
    train_cams = train.cameras
    if "cams_K" in v:
        n = len(train.cameras)
        posefree = (Cameras(v["cams_K"], v["cams_viewmats"], scene.width, scene.height), json.loads(v["poses_json"]))
        train_cams = Cameras(v["cams_K"][:n], v["cams_viewmats"][:n], train.width, train.height)
    init = PointInit(points=v["points"], valid=v["valid"], colors=v["colors"], depth=v["depth"],
                     cameras=train_cams, method=v["method"], meta=json.loads(v["meta_json"]),
                     confidence=v["confidence"])
    em = EvalMask(v["mask"], v["mask_method"], json.loads(v["mask_meta_json"]))
    return init, em, hit, posefree


def prepare_scene(cfg: ConfigLike, catalogue: Optional[Union[SceneCatalogue, Scene]] = None) -> PreparedScene:
    """Scene, split, initialisation and evaluation mask; ``catalogue`` replaces ``cfg.scene.path`` (a catalogue,
    or a Scene made in memory, in its dataset units and at any resolution)."""
    t0 = time.perf_counter()
    cfg = as_typed(cfg)
    if isinstance(catalogue, Scene):
        catalogue = SceneCatalogue.from_scene(catalogue, "memory")
    catalogue = catalogue or open_working_scene(cfg)
    split = split_from_config(cfg, catalogue)  # cameras only: no image decoded yet
    used = list(split.train) + list(split.test)
    scene = load_working_scene(cfg, used, catalogue)  # only these views
    n_train = len(split.train)
    train, test = scene.subset(range(n_train)), scene.subset(range(n_train, len(used)))
    local = Split(tuple(range(n_train)), tuple(range(n_train, len(used))), split.rule)
    block = cfg.init.block
    full_init, em, hit, posefree = _scene_stage(cfg, scene, local, train, test)
    gt_train = train  # GT depth lives in the (normalised) dataset frame
    poses = None
    if posefree is not None:  # recovered train cameras, registered test cameras; dataset poses only score them
        cams, poses = posefree
        n = len(train.cameras)
        train = replace(train, cameras=Cameras(cams.K[:n], cams.viewmats[:n], train.width, train.height), depths=None)
        test = replace(test, cameras=Cameras(cams.K[n:], cams.viewmats[n:], test.width, test.height), depths=None)
    init = full_init.pooled(block)
    pts, cols = init.points[init.valid], init.colors[init.valid]
    init_gaussians = Gaussians.from_points(pts, cols, knn_log_scales(pts), opacity=cfg.probe.init_opacity,
                                           sh_degree=cfg.probe.sh_degree)
    gt = None
    init_error = None
    if gt_train.depths is not None:  # geometry metrics align the Gaussians to these by sim(3)
        gt_full = build_initialiser("dataset", fill=False)(gt_train)
        gt = gt_full.pooled(block)
        ok = gt_full.valid & full_init.valid
        if ok.any() and posefree is None:  # depths of a recovered frame are not comparable
            rel = ((full_init.depth - gt_full.depth).abs() / gt_full.depth.clamp_min(1e-12))[ok]
            init_error = {"median_rel_depth_error": float(rel.median()),
                          "mean_rel_depth_error": float(rel.mean()),
                          "p90_rel_depth_error": float(rel.quantile(0.9)),
                          "fraction_within_1pct": float((rel < 0.01).float().mean())}
    extent = scene_extent(train.cameras, fallback=float(init.depth[init.valid].median()))
    frame = Frame.from_dict(scene.meta["frame"])
    info = {"scene": scene.name, "format": catalogue.format, "views": catalogue.num_views,
            "resolution": [scene.width, scene.height],
            "split": split.rule, "split_name": cfg.split.name,
            "train_indices": list(split.train), "test_indices": list(split.test),
            "train_views": list(train.image_names), "test_views": list(test.image_names), "split_rule": split.rule,
            "gaussians": len(init_gaussians), "grid": list(init.valid.shape[1:]), "grid_stride": block,
            "train_coverage": init.coverage,
            "init_confident_fraction": float((full_init.confidence > 0).float().mean()),
            "init_depth_error": init_error, "extent": extent,
            "frame": frame.as_dict(), "units": scene.units, "dataset_units": frame.units,
            "background": scene.meta.get("background"),
            "init": full_init.method, "init_meta": full_init.meta,
            "eval_mask": {"method": em.method, "sha256": em.sha256, "coverage": em.coverage,
                          "per_view": em.per_view, "meta": em.meta},
            "eval_coverage": em.coverage, "eval_mask_sha256": em.sha256,
            "test_valid_fraction": em.coverage, "scene_stage_cached": hit,
            "scene_stage_seconds": time.perf_counter() - t0, "load_warnings": list(catalogue.warnings),
            "poses": poses}
    return PreparedScene(scene, split, train, test, init, init_gaussians, em.masks, extent, gt, info, frame)


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
    frame = prep.frame
    if frame is None:
        return point_metrics(g.means[corr], gt_pts, align=True, corresponding=True, units=prep.scene.units)
    # computed in the normalised frame, reported in the dataset's units (mm for DTU)
    return point_metrics(g.means[corr], gt_pts, align=True, corresponding=True, scale=1.0 / frame.scale,
                         units=frame.units)


def head_width(cfg: ConfigLike, feat_dim: int) -> int:
    """``probe.hidden``: an int, or ``input`` for the reference's D x D heads (6 -> 6 -> out for IUVRGB)."""
    h = as_typed(cfg).probe.hidden
    return int(feat_dim) if h == "input" else int(h)


def run_summary(cfg: ConfigLike, prep: PreparedScene, ev: EvalResult) -> dict:
    """The flat record of a run that reports, stores and leaderboards read."""
    cfg = as_typed(cfg)
    s, i = ev.summary, prep.info
    return {"scene": i["scene"], "backbone": backbone_label(cfg), "mode": cfg.probe.mode, "seed": cfg.seed, "init": i["init"], "split": i["split"], "gaussians": i["gaussians"],
            "train_coverage": i["train_coverage"], "eval_coverage": i["eval_coverage"],
            "eval_mask_sha256": i["eval_mask_sha256"], "psnr": s.get("psnr"), "psnr_full": s.get("psnr_full"),
            "psnr_no_pose_refine": s.get("psnr_no_pose_refine"), "ssim": s.get("ssim"),
            "ssim_full": s.get("ssim_full"), "lpips": s.get("lpips"), "mean_colour_psnr": s.get("mean_color_psnr"),
            "mean_colour_psnr_full": s.get("mean_color_psnr_full")}


def run_probe(cfg: DictConfig, prep: Optional[PreparedScene] = None, feats: Optional[PreparedFeatures] = None,
              run_name: Optional[str] = None) -> ProbeRun:
    """One probe run end to end; writes the run folder (with ``cfg`` as given: the raw tree is what
    config.yaml records) and returns its metrics. The stages read the typed config."""
    c = as_typed(cfg)
    seed = c.seed
    run = RunDir.create(c.output.root, run_name or c.output.name or default_run_name(cfg), cfg, seed)
    try:
        seed_everything(seed)
        device = resolve_device(c.device)
        with run.timer("prepare_scene"):
            prep = prep or prepare_scene(c)
        with run.timer("features"):
            feats = feats or prepare_features(c, prep, device)
        renderer = get_renderer(c.render.backend)
        seed_everything(seed)
        readout = Readout(c.probe.mode, feats.features.dim, prep.init_gaussians,
                          hidden=head_width(c, feats.features.dim)).to(device)
        images = prep.train.images.to(device)
        trainer = ProbeTrainer(readout, _to(feats.features, device), images, prep.train.cameras, renderer,
                               c.train, prep.extent, seed)
        with run.timer("train"):
            result = trainer.run(desc=f"{backbone_label(c)}/{c.probe.mode}")
        mean_color = prep.train.images.mean(dim=(0, 2, 3))
        lpips_metric, lpips_status = build_lpips(c.eval.lpips, device)
        with run.timer("evaluate"):
            ev = evaluate_views(renderer, result.gaussians, prep.test, prep.test_masks, c.eval, prep.extent,
                                mean_color, lpips_metric, lpips_status)
        summary = run_summary(c, prep, ev)
        geometry = geometry_metrics(prep, result.gaussians)
        if geometry is not None:
            summary.update({k: geometry.get(k) for k in ("accuracy", "completeness", "distance")},
                           geometry_units=geometry.get("units"))
        warnings = protocol_warnings(prep.info, bool(prep.split.test)) + score_warnings(summary) \
            + loss_warnings(result.history)
        summary["warnings"] = warnings
        metrics = {
            "summary": summary, "warnings": warnings,
            "scene": prep.info, "features": feats.info, "renderer": renderer.name,
            "mode": c.probe.mode, "backbone": backbone_label(c), "poses": prep.info.get("poses"),
            "nvs": ev.summary, "views": [v.as_dict() for v in ev.views],
            "geometry": geometry,
            "train": {"final_photo_loss": (result.history["photo_loss"] or [None])[-1],
                      "history": result.history},
        }
        with run.timer("write"):
            write_outputs(run, c, prep, result, ev)
            if not feats.info.get("per_pixel"):
                write_feature_visualisation(run.path / "features.png", feats, prep.train.images)
        run.write_json("metrics.json", metrics)
        run.finish("complete")
        return ProbeRun(run.path, metrics, result, ev)
    except BaseException as e:
        run.fail(e)
        raise


def write_outputs(run: RunDir, cfg: Config, prep: PreparedScene, result: TrainResult, ev: EvalResult) -> None:
    write_gaussians_ply(run.path / "gaussians.ply", result.gaussians)
    test_viewmats = torch.stack([v.pose.viewmat.cpu() if v.pose else prep.test.cameras.viewmats[i]
                                 for i, v in enumerate(ev.views)])
    torch.save({"train_viewmats": result.viewmats.cpu(), "test_viewmats": test_viewmats}, run.path / "poses.pt")
    write_run_cameras(run.path / "cameras", prep.train.cameras.with_viewmats(result.viewmats.detach().cpu()),
                      prep.test.cameras.with_viewmats(test_viewmats), prep.train.image_names, prep.test.image_names)
    if cfg.eval.save_renders:
        out = run.path / "renders"
        out.mkdir()
        for i, v in enumerate(ev.views):
            stem = Path(v.name).stem
            write_image(out / f"{stem}_render.png", ev.renders[i])
            write_image(out / f"{stem}_gt.png", prep.test.images[i])
            write_image(out / f"{stem}_mask.png", prep.test_masks[i].float()[None].expand(3, -1, -1))


def write_run_cameras(folder: Path, train: Cameras, test: Cameras, train_names: Sequence[str],
                      test_names: Sequence[str]) -> None:
    """The run's refined train and test cameras (the frame of gaussians.ply, working resolution) as a COLMAP
    text model (``folder/sparse/0``) and a ``folder/transforms.json``, image names as in the scene."""
    cams = Cameras(torch.cat([train.K, test.K]), torch.cat([train.viewmats, test.viewmats]), train.width, train.height)
    names = list(train_names) + list(test_names)
    write_colmap(folder, cams, names)
    write_transforms(folder, cams, names, extra={"train_views": list(train_names), "test_views": list(test_names)})


def _to(feats: GaussianFeatures, device: str) -> GaussianFeatures:
    if device == "cpu":
        return feats
    return GaussianFeatures(feats.tokens.to(device), feats.index.to(device), feats.weight.to(device))
