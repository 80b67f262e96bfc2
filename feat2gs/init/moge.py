"""``init=moge``: per-view MoGe depth, aligned to the scene's known geometry, unprojected with the known cameras.

MoGe predicts one camera-space point map per image. Its depth is only defined up to a per-view affine map:
MoGe-1 is scale-invariant, MoGe-2 is metric in metres but the scene may be in arbitrary units (COLMAP), and the
z-shift that ``infer`` recovers from the predicted focal is an estimate. So every view's depth ``d`` is mapped
to the scene by its own scale and shift, ``d' = s d + t``, then unprojected with the scene's **known**
intrinsics and pose into the shared world frame (``Cameras.unproject``). MoGe's own intrinsics are not used
for the points: with known cameras they would only disagree with them (MoGe assumes square pixels and a
centred principal point). Because the alignment is affine in depth, a wrong MoGe focal (hence a wrong
recovered z-shift) is absorbed by ``t``; MoGe's field of view is still reported in ``meta`` (``fov_x_pred``
next to the known ``fov_x_known``, degrees) as a diagnostic.

Alignment (per view, all views solved as one batch):

1. **Target depth** (``target``): ``"sparse"`` -- the scene's SfM points (``scene.sparse_points``, e.g.
   COLMAP/LLFF) projected into the view with a per-pixel z-buffer (the nearest point wins a pixel, pixel
   (i, j) covers [j, j+1) x [i, i+1)); points hidden behind an unreconstructed surface, and spurious points in
   front of the surface (which win their pixel), are not detected here and are left to the truncation.
   ``"mvs"`` -- the depth of the ``mvs`` initialiser (plane-sweep stereo with the known poses; ``mvs_options``
   are its options) where it is valid. ``"auto"`` (default) -- ``sparse`` when the scene has sparse points,
   else ``mvs``.
2. **Samples**: pixels where the target and the prediction are both valid, subsampled to at most
   ``align_resolution`` x ``align_resolution`` with ``masked_nearest_resize`` (per cell, the valid pixel nearest
   to the cell centre), because the truncated solver is O(n^2 log n) in the number n of samples
   (32 x 32: 1-2 s per view on one CPU core).
3. **Truncated ROE** (``feat2gs.geometry.alignment.align_depth_affine``, exact global optimum of
   ``sum_i min(tau_i, w_i |s x_i + t - y_i|)``, x = predicted depth, y = target depth). ``sample_weights``:
   ``"inverse_depth"`` (default, as MoGe: w = 1/y, so a weighted residual is a *relative* depth error) or
   ``"uniform"``. ``trunc`` is always relative to depth: with inverse-depth weights tau = ``trunc`` (a sample
   whose aligned depth is off by more than ``trunc`` x its target depth costs a constant, i.e. is an outlier);
   with uniform weights tau = ``trunc`` x the median target depth of the view. ``trunc=None`` solves the plain
   weighted L1 problem (exact and much faster, O(K n log n), but not robust to gross outliers).
4. A view **fails** when it has fewer than ``min_samples`` samples, when the problem is degenerate (constant
   predicted depth) or when the scale is not positive. ``on_failure="error"`` (default) raises an
   ``InputError`` naming the view and the numbers; ``"drop"`` keeps the view's camera but gives it no valid
   pixel (listed in ``meta["dropped_views"]``); if every view fails the initialiser raises.

Output: the aligned depth where the prediction is valid (MoGe's mask when ``use_moge_mask``) and positive,
inside the scene masks when ``use_masks``; optionally without depth edges (``edge_rtol``: a pixel whose 3 x 3
neighbourhood spans more than ``edge_rtol`` x its depth is dropped -- MoGe's ``depth_map_edge``; off by
default). ``meta`` records, per view: ``scale``, ``shift``, ``samples``, ``loss`` (the truncated objective),
``residual_median`` / ``residual_p90`` (relative |aligned - target| / target over the samples),
``inlier_fraction`` (relative residual < ``trunc``), plus the target kind and the predictor's description.

The depth predictor is pluggable (``predictor``): any callable ``images (V, 3, H, W) in [0, 1] ->
DepthPrediction`` or ``-> (depth (V, H, W), mask (V, H, W))``. The default is MoGe (``MoGePredictor``), loaded
lazily on the first call from ``weights`` (a ``model.pt`` or a folder holding one) or, without it, the released
``variant`` (default ``v2-vitl-normal``) from the Hugging Face cache -- ``WeightsNotFoundError`` says how to
fetch it. Tests inject depth maps of known error through ``predictor``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..geometry.fill import fill_depth
from ..geometry.alignment import align_depth_affine
from ..geometry.focal import intrinsics_to_fov, pixel_to_normalized_intrinsics
from ..geometry.splat import splat_depth
from ..metrics.geometry import masked_nearest_resize_index
from ..scene import Cameras, Scene
from .base import INITIALISERS, Initialiser, PointInit
from .dataset import point_init_from_depth

TARGETS = ("auto", "sparse", "mvs")
WEIGHTS = ("inverse_depth", "uniform")
ON_FAILURE = ("error", "drop")


# ------------------------------------------------------------------------------------------------ predictions
@dataclass
class DepthPrediction:
    """Per-view depth of a monocular predictor at the images' resolution.

    ``depth`` (V, H, W): z-depth up to a per-view affine map (any value where ``mask`` is False);
    ``mask`` (V, H, W) bool: where the prediction is valid; ``intrinsics`` (V, 3, 3) the predictor's own pixel
    K when it estimates one (diagnostics only); ``normal`` (V, H, W, 3) camera-frame normals or None;
    ``meta``: a description of the predictor.
    """

    depth: torch.Tensor
    mask: torch.Tensor
    intrinsics: Optional[torch.Tensor] = None
    normal: Optional[torch.Tensor] = None
    meta: dict[str, Any] = field(default_factory=dict)


DepthPredictor = Callable[[torch.Tensor], Union[DepthPrediction, tuple]]


def as_prediction(out: Any, shape: tuple[int, int, int], where: str = "init.options.predictor") -> DepthPrediction:
    """A predictor's output as a checked ``DepthPrediction`` of batch shape ``shape`` = (V, H, W)."""
    if isinstance(out, (tuple, list)):
        if len(out) != 2:
            raise InputError(where, f"a predictor returns (depth, mask) or a DepthPrediction, got {len(out)} items")
        out = DepthPrediction(torch.as_tensor(out[0]), torch.as_tensor(out[1]))
    if not isinstance(out, DepthPrediction):
        raise InputError(where, f"a predictor returns (depth, mask) or a DepthPrediction, got {type(out).__name__}")
    if tuple(out.depth.shape) != shape or tuple(out.mask.shape) != shape:
        raise InputError(where, f"expected depth and mask of shape {shape}, got {tuple(out.depth.shape)} and "
                                f"{tuple(out.mask.shape)}")
    depth = out.depth.detach().float().cpu()
    mask = out.mask.detach().bool().cpu() & torch.isfinite(depth)
    return DepthPrediction(depth, mask, out.intrinsics, out.normal, dict(out.meta))


def load_moge_model(variant: Optional[str] = None, weights: Optional[str] = None, device: str = "cpu",
                    variant_field: str = "init.options.variant", weights_field: str = "init.options.weights"):
    """A MoGe model and a description of it.

    ``weights`` (a ``model.pt`` or a folder holding one) is loaded strictly from its own ``model_config``; when
    ``variant`` is also given the file must be of that variant's version (v1/v2). Without ``weights`` the
    released ``variant`` (default ``v2-vitl-normal``) comes from the Hugging Face cache (never downloaded;
    ``WeightsNotFoundError`` tells how to get it). Bad files raise ``InputError`` naming the file.
    """
    from backbones.moge.load import CHECKPOINT_FILE, VARIANTS, get_variant, load_checkpoint, load_pretrained

    if variant is not None and variant not in VARIANTS:
        raise InputError(variant_field, f"unknown MoGe variant {variant!r}; one of {', '.join(VARIANTS)}")
    if weights:
        path = Path(str(weights)).expanduser()
        if path.is_dir():
            path = path / CHECKPOINT_FILE
        if not path.is_file():
            raise InputError(weights_field,
                             f"{path} does not exist (a MoGe {CHECKPOINT_FILE}, or a folder holding one)")
        version = get_variant(variant).version if variant else None
        model = load_checkpoint(path, version=version, device=device)
        name = str(path)
    else:
        from ..errors import WeightsNotFoundError

        v = get_variant(variant)
        try:
            model = load_pretrained(v.name, None, device=device)
        except WeightsNotFoundError as e:  # point at the option that takes a local file here
            flag = f"{weights_field} PATH" if weights_field.startswith("--") else f"{weights_field}=PATH"
            raise WeightsNotFoundError(e.model, e.how_to_get.replace("backbone.weights=PATH", flag)) from None
        name = v.name
    return model, {"model": name, "version": model.version}


class MoGePredictor:
    """``images -> DepthPrediction`` with a MoGe model (``infer`` without the mask applied).

    ``num_tokens`` (default: from ``resolution_level`` in [0, 9], 9 = the trained maximum) sets the ViT token
    budget; images go through the model ``batch_size`` at a time on the model's device.
    """

    def __init__(self, model, num_tokens: Optional[int] = None, resolution_level: int = 9, batch_size: int = 2,
                 use_fp16: bool = True, description: Optional[dict] = None):
        self.model = model
        self.num_tokens = num_tokens
        self.resolution_level = resolution_level
        self.batch_size = max(1, int(batch_size))
        self.use_fp16 = use_fp16
        self.description = dict(description or {})

    def __call__(self, images: torch.Tensor) -> DepthPrediction:
        depth, mask, K, normal = [], [], [], []
        for i in range(0, images.shape[0], self.batch_size):
            r = self.model.infer(images[i:i + self.batch_size], num_tokens=self.num_tokens,
                                 resolution_level=self.resolution_level, apply_mask=False, use_fp16=self.use_fp16)
            depth.append(r.depth.float().cpu())
            mask.append(r.mask.cpu() if r.mask is not None else torch.ones_like(r.depth, dtype=torch.bool).cpu())
            K.append(r.pixel_intrinsics().float().cpu())
            if r.normal is not None:
                normal.append(r.normal.float().cpu())
        return DepthPrediction(torch.cat(depth), torch.cat(mask), torch.cat(K),
                               torch.cat(normal) if normal else None, dict(self.description))


# ------------------------------------------------------------------------------------------------ targets
def sparse_target_depth(cameras: Cameras, points: torch.Tensor) -> torch.Tensor:
    """(V, H, W) z-depth of world points (P, 3) splatted into every view (``geometry.splat.splat_depth``)."""
    return splat_depth(cameras, points)


def depth_edges(depth: torch.Tensor, valid: torch.Tensor, rtol: float) -> torch.Tensor:
    """(V, H, W) bool: pixels whose valid 3 x 3 neighbourhood spans more than ``rtol`` x their depth."""
    big = torch.finfo(depth.dtype).max
    hi = F.max_pool2d(torch.where(valid, depth, torch.full_like(depth, -big))[:, None], 3, 1, 1)[:, 0]
    lo = -F.max_pool2d(torch.where(valid, -depth, torch.full_like(depth, -big))[:, None], 3, 1, 1)[:, 0]
    return valid & ((hi - lo) > rtol * depth.abs())


@dataclass
class ViewAlignment:
    """Per-view affine alignments ``target ~= scale * pred + shift`` (all (V,)) and their diagnostics."""

    scale: torch.Tensor
    shift: torch.Tensor
    loss: torch.Tensor
    samples: torch.Tensor  # number of samples used
    ok: torch.Tensor  # bool: enough samples, non-degenerate, positive scale
    residual_median: torch.Tensor  # relative |aligned - target| / target over the samples (nan without samples)
    residual_p90: torch.Tensor
    inlier_fraction: torch.Tensor  # fraction of samples with relative residual < trunc (nan untruncated)


def align_views(pred: torch.Tensor, pred_valid: torch.Tensor, target: torch.Tensor, target_valid: torch.Tensor,
                trunc: Optional[float], weights: str = "inverse_depth", resolution: int = 32,
                min_samples: int = 20) -> ViewAlignment:
    """Per-view truncated-ROE scale + shift of ``pred`` (V, H, W) onto ``target`` (V, H, W) on the jointly valid
    pixels, subsampled to at most ``resolution`` x ``resolution`` (see the module docstring)."""
    V, H, W = pred.shape
    joint = pred_valid & target_valid & (target > 0) & torch.isfinite(pred)
    index, ok = masked_nearest_resize_index(joint, (min(resolution, H), min(resolution, W)))
    index, ok = index.reshape(V, -1), ok.reshape(V, -1)
    x = pred.reshape(V, -1).gather(1, index).double()
    y = target.reshape(V, -1).gather(1, index).double()
    x, y = torch.where(ok, x, torch.zeros_like(x)), torch.where(ok, y, torch.ones_like(y))
    w = ok.double() / y if weights == "inverse_depth" else ok.double()
    samples = ok.sum(1)
    tau = None
    if trunc is not None:
        if weights == "inverse_depth":
            tau = torch.full((V, 1), float(trunc), dtype=torch.float64)
        else:
            med = torch.where(ok, y, torch.full_like(y, float("nan"))).nanmedian(1).values
            tau = (float(trunc) * torch.nan_to_num(med, nan=1.0)).unsqueeze(1)
    al = align_depth_affine(x, y, w, trunc=tau)
    good = al.valid & (samples >= min_samples) & (al.scale > 0) & torch.isfinite(al.scale) & torch.isfinite(al.shift)
    rel = ((al.scale[:, None] * x + al.shift[:, None] - y).abs() / y)
    rel = torch.where(ok, rel, torch.full_like(rel, float("nan")))
    has = samples > 0
    q = torch.full((V, 2), float("nan"), dtype=torch.float64)
    if has.any():
        q[has] = torch.nanquantile(rel[has], torch.tensor([0.5, 0.9], dtype=torch.float64), dim=1).T
    if trunc is None:  # no inlier notion without a truncation
        inl = torch.full_like(q[:, 0], math.nan)
    else:
        inl = torch.where(has, ((rel < trunc) & ok).sum(1).double() / samples.clamp_min(1),
                          torch.full_like(q[:, 0], math.nan))
    return ViewAlignment(al.scale.float(), al.shift.float(), al.loss.float(), samples, good, q[:, 0].float(),
                         q[:, 1].float(), inl.float())


def fov_x_deg(K: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Horizontal field of view (degrees) of pixel intrinsics (V, 3, 3) of ``width`` x ``height`` images."""
    return torch.rad2deg(intrinsics_to_fov(pixel_to_normalized_intrinsics(K.double(), width, height))[0]).float()


# ------------------------------------------------------------------------------------------------ initialiser
@INITIALISERS.register("moge")
class MoGeInit(Initialiser):
    """Known poses + per-view MoGe depth aligned to the scene by truncated ROE (see the module docstring).

    Options (defaults in brackets):
      variant [None -> v2-vitl-normal]: released MoGe variant (v1-vitl, v2-vitl, v2-vitl-normal,
        v2-vitb-normal, v2-vits-normal); with ``weights`` it only checks the file's version.
      weights [None]: a MoGe ``model.pt`` (or a folder holding one); None = the Hugging Face cache.
      num_tokens [None]: ViT token budget; None = from ``resolution_level``.
      resolution_level [9]: 0..9, 9 = the model's trained maximum number of tokens.
      batch_size [2]: images per MoGe forward pass.
      device ["auto"]: where MoGe runs (auto = cuda when available).
      target ["auto"]: "auto" | "sparse" | "mvs" -- what the depth is aligned to.
      mvs_options [{}]: options of the ``mvs`` initialiser when the target is MVS depth.
      trunc [0.1]: truncation of the ROE objective, relative to depth (None = untruncated weighted L1).
      sample_weights ["inverse_depth"]: sample weights, "inverse_depth" (1/target, as MoGe) or "uniform".
      align_resolution [32]: samples per view are subsampled to at most this many squared.
      min_samples [20]: a view with fewer jointly valid samples fails.
      on_failure ["error"]: "error" | "drop" for views whose alignment fails.
      use_moge_mask [True]: keep only pixels inside the predictor's validity mask.
      use_masks [True]: keep only pixels inside ``scene.masks`` when the scene has masks.
      edge_rtol [None]: drop depth-edge pixels (relative 3 x 3 depth span above this), e.g. 0.04.
      predictor [None]: a depth predictor to use instead of MoGe (``images -> DepthPrediction | (depth, mask)``).
      seed [0]: recorded only (the method is deterministic).
      fill [True]: dense initialisation -- pixels dropped by the masks / edge test get a depth interpolated
        from the kept ones (confidence 0); False keeps only the kept pixels.
    """

    name = "moge"

    def __init__(self, variant: Optional[str] = None, weights: Optional[str] = None, num_tokens: Optional[int] = None,
                 resolution_level: int = 9, batch_size: int = 2, device: str = "auto", target: str = "auto",
                 mvs_options: Optional[dict] = None, trunc: Optional[float] = 0.1,
                 sample_weights: str = "inverse_depth", align_resolution: int = 32, min_samples: int = 20,
                 on_failure: str = "error", use_moge_mask: bool = True, use_masks: bool = True,
                 edge_rtol: Optional[float] = None, predictor: Optional[DepthPredictor] = None, seed: int = 0,
                 fill: bool = True):
        checks = {
            "target": lambda: target in TARGETS,
            "sample_weights": lambda: sample_weights in WEIGHTS,
            "on_failure": lambda: on_failure in ON_FAILURE,
            "trunc": lambda: trunc is None or (math.isfinite(float(trunc)) and float(trunc) > 0),
            "resolution_level": lambda: 0 <= int(resolution_level) <= 9,
            "num_tokens": lambda: num_tokens is None or int(num_tokens) >= 1,
            "align_resolution": lambda: int(align_resolution) >= 2,
            "min_samples": lambda: int(min_samples) >= 2,
            "batch_size": lambda: int(batch_size) >= 1,
            "edge_rtol": lambda: edge_rtol is None or float(edge_rtol) > 0,
            "predictor": lambda: predictor is None or callable(predictor),
            "mvs_options": lambda: mvs_options is None or isinstance(mvs_options, dict),
        }
        values = dict(locals())
        for key, check in checks.items():
            try:
                good = bool(check())
            except (TypeError, ValueError):
                good = False
            if not good:
                allowed = {"target": TARGETS, "sample_weights": WEIGHTS, "on_failure": ON_FAILURE}.get(key)
                hint = f"; one of {', '.join(allowed)}" if allowed else " (see MoGeInit's docstring)"
                raise InputError(f"init.options.{key}", f"bad value {values[key]!r}{hint}")
        self.variant, self.weights = variant, weights
        self.num_tokens = None if num_tokens is None else int(num_tokens)
        self.resolution_level = int(resolution_level)
        self.batch_size = int(batch_size)
        self.device = str(device)
        self.target = target
        self.mvs_options = dict(mvs_options or {})
        self.trunc = None if trunc is None else float(trunc)
        self.sample_weights = sample_weights
        self.align_resolution = int(align_resolution)
        self.min_samples = int(min_samples)
        self.on_failure = on_failure
        self.use_moge_mask = bool(use_moge_mask)
        self.use_masks = bool(use_masks)
        self.edge_rtol = None if edge_rtol is None else float(edge_rtol)
        self.predictor = predictor
        self.seed = int(seed)
        self.fill = bool(fill)

    # ------------------------------------------------------------------ stages
    def get_predictor(self) -> DepthPredictor:
        """The injected predictor, or MoGe (loaded on first use and kept)."""
        if self.predictor is None:
            from ..device import resolve_device

            model, desc = load_moge_model(self.variant, self.weights, resolve_device(self.device))
            self.predictor = MoGePredictor(model, self.num_tokens, self.resolution_level, self.batch_size,
                                           description=desc)
        return self.predictor

    def target_kind(self, train: Scene) -> str:
        if self.target != "auto":
            return self.target
        has_sparse = train.sparse_points is not None and train.sparse_points.shape[0] > 0
        return "sparse" if has_sparse else "mvs"

    def target_depth(self, train: Scene, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(depth, valid) (V, H, W) of the alignment target."""
        if kind == "sparse":
            if train.sparse_points is None or train.sparse_points.shape[0] == 0:
                raise InputError(f"init.options.target ({train.name}.sparse_points)",
                                 "the scene has no sparse (SfM) points; use target=mvs or auto")
            depth = sparse_target_depth(train.cameras, train.sparse_points)
            return depth, depth > 0
        from .mvs import MVSInit

        try:
            mvs = MVSInit(**self.mvs_options)
        except TypeError as e:
            raise InputError("init.options.mvs_options", str(e)) from None
        dense = mvs.reconstruct(train)
        return dense.depth, dense.confident  # align to the pixels that passed MVS's filters, not the filled ones

    # ------------------------------------------------------------------ entry point
    def __call__(self, train: Scene) -> PointInit:
        t0 = time.perf_counter()
        V, H, W = train.num_views, train.height, train.width
        kind = self.target_kind(train)
        target, target_valid = self.target_depth(train, kind)  # fails early (before loading a model)
        t_target = time.perf_counter() - t0
        with torch.no_grad():
            pred = as_prediction(self.get_predictor()(train.images), (V, H, W))
        t_pred = time.perf_counter() - t0 - t_target
        pred_valid = pred.mask if self.use_moge_mask else torch.isfinite(pred.depth)

        al = align_views(pred.depth, pred_valid, target, target_valid, self.trunc, self.sample_weights,
                         self.align_resolution, self.min_samples)
        failed = [v for v in range(V) if not bool(al.ok[v])]
        reasons = {v: self._failure_reason(al, v) for v in failed}
        if failed and (self.on_failure == "error" or len(failed) == V):
            detail = "; ".join(f"view '{train.image_names[v]}': {reasons[v]}" for v in failed)
            raise InputError(f"init=moge ({train.name}, target {kind})",
                             f"cannot align the predicted depth of {len(failed)} of {V} views ({detail}). "
                             + ("Use init.options.on_failure=drop to skip such views, " if len(failed) < V else "")
                             + "try another target (sparse/mvs), lower min_samples or raise align_resolution")

        depth = al.scale[:, None, None] * pred.depth + al.shift[:, None, None]
        valid = pred_valid & torch.isfinite(depth) & (depth > 0) & al.ok[:, None, None]
        if self.use_masks and train.masks is not None:
            valid &= train.masks
        if self.edge_rtol is not None:
            valid &= ~depth_edges(depth, valid, self.edge_rtol)
        if not valid.any():
            raise InputError(f"init=moge ({train.name})", "no pixel has a valid positive aligned depth")

        fov_known = fov_x_deg(train.cameras.K, W, H)
        lst = lambda t: [None if not math.isfinite(float(v)) else float(v) for v in t]  # noqa: E731
        meta = {
            **pred.meta,
            "target": kind,
            "target_valid_fraction": float(target_valid.float().mean()),
            "trunc": self.trunc, "sample_weights": self.sample_weights, "align_resolution": self.align_resolution,
            "scale": lst(al.scale), "shift": lst(al.shift), "loss": lst(al.loss),
            "samples": [int(n) for n in al.samples],
            "residual_median": lst(al.residual_median), "residual_p90": lst(al.residual_p90),
            "inlier_fraction": lst(al.inlier_fraction),
            "dropped_views": [train.image_names[v] for v in failed],
            "failure_reasons": {train.image_names[v]: reasons[v] for v in failed},
            "fov_x_known": lst(fov_known),
            "fov_x_pred": lst(fov_x_deg(pred.intrinsics, W, H)) if pred.intrinsics is not None else None,
            "valid_fraction": float(valid.float().mean()),
            "seconds": {"target": t_target, "predict": t_pred, "total": time.perf_counter() - t0},
            "seed": self.seed,
        }
        confidence = valid.float()
        if self.fill:  # dense: masked-out / edge / invalid pixels of aligned views get interpolated depth
            depth = fill_depth(torch.where(valid, depth, torch.zeros_like(depth)), valid)
            valid = torch.isfinite(depth) & (depth > 0) & al.ok[:, None, None]
        meta["dense_fraction"] = float(valid.float().mean())
        return point_init_from_depth(train, depth, valid, method="moge", meta=meta, confidence=confidence)

    def _failure_reason(self, al: ViewAlignment, v: int) -> str:
        n = int(al.samples[v])
        if n < self.min_samples:
            return f"{n} jointly valid target samples (< min_samples={self.min_samples})"
        if not math.isfinite(float(al.scale[v])) or float(al.scale[v]) <= 0:
            return f"non-positive or undetermined scale {float(al.scale[v]):.4g} from {n} samples"
        return f"degenerate alignment problem ({n} samples; constant predicted depth?)"
