"""The feature stage: backbone features of the train views -> (cache) -> PCA -> per-Gaussian features.

Depends on the scene stage (the train images and the Gaussian grid) and on the ``backbone`` config; shared
by the three probing modes.

* One backbone: its features (through the feature cache, ``feat2gs/feature_cache.py``) are PCA'd to
  ``probe.pca_dim`` channels fitted on the train views' tokens (when it has more channels; per-pixel IUVRGB
  is used as is).
* Several backbones (``backbone.name=dinov2+clip`` or a list): each one's features are PCA'd to
  ``probe.pca_dim``, min-max normalised to [0, 1] with one global min and max per backbone (over all train
  tokens and channels), resampled onto a common token grid, concatenated along channels and PCA'd again to
  ``probe.pca_dim`` (the reference's concatenation, section 2 of docs/feat2gs_reference.md). The common grid
  is the finest of the components' grids (the pixel grid when a per-pixel backbone takes part) over the whole
  image; each backbone's map is resampled bilinearly over its own pixel extent onto the common grid's token
  centres (``FeatureMap.sample``), so features stay pixel-aligned. Unlike the reference, IUVRGB in a
  concatenation is treated like any other component (normalised and concatenated before the final PCA).

Options of one component of a concatenation go in ``backbone.per_backbone.<name>`` (layer, weights,
input_size, variant, seed, arch_overrides); the ``backbone.*`` values apply to every component otherwise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Protocol, Sequence, Union

import torch

from backbones import BackboneOptions, build_backbone
from backbones.base import FeatureMap
from probes.features import GaussianFeatures
from probes.pca import PCA

from .config.backbones import COMPONENT_FIELDS, backbone_names, check_components
from .config.typed import ConfigLike, as_typed
from .feature_cache import CacheStats, FeatureCache, extract_features, options_key


class _HasTrainViews(Protocol):
    """What the feature stage reads of the scene stage's output (``pipeline.PreparedScene``): the train
    views (``.train.images``) and the Gaussian grid (``.init.valid``)."""

    train: Any
    init: Any

#: fields of ``BackboneOptions`` that ``backbone.per_backbone.<name>`` may set


@dataclass
class BackboneFeatures:
    """Raw features of one backbone on the train views, and how they were obtained."""

    name: str
    feature_map: FeatureMap  # (V, C, h, w), rounded to the cache's storage precision
    per_pixel: bool
    cache: Optional[CacheStats]  # None: not cached (cache disabled, or a per-pixel backbone)
    seconds: float  # wall time of building the backbone and getting its features

    def info(self) -> dict[str, Any]:
        out = {"name": self.name, "channels": self.feature_map.channels, "grid": list(self.feature_map.grid),
               "extent": list(self.feature_map.extent), "per_pixel": self.per_pixel,
               "seconds": round(self.seconds, 4)}
        if self.cache is not None:
            c = self.cache.as_dict()
            out["cache"] = {k: c[k] for k in ("hits", "misses", "corrupt")}
        return out


@dataclass
class PreparedFeatures:
    features: GaussianFeatures
    feature_map: FeatureMap  # PCA'd token maps of the train views (for visualisation)
    info: dict[str, Any] = field(default_factory=dict)
    components: list[BackboneFeatures] = field(default_factory=list)  # per backbone, before PCA


# ---------------------------------------------------------------------------------------------- config
def backbone_options(cfg: ConfigLike, device: str, name: Optional[str] = None) -> BackboneOptions:
    """``BackboneOptions`` from ``backbone.*``; for a component ``name`` of a concatenation, with its
    ``backbone.per_backbone.<name>`` values on top (their keys and types were checked at load)."""
    b = as_typed(cfg).backbone
    values = {k: getattr(b, k) for k in COMPONENT_FIELDS}
    if name is not None:
        values.update((b.per_backbone or {}).get(name) or {})
    return BackboneOptions(layer=values["layer"], weights=values["weights"], seed=int(values["seed"]),
                           device=device, input_size=values["input_size"], variant=values["variant"],
                           arch_overrides=values["arch_overrides"] or {})


def feature_cache(cfg: ConfigLike) -> Optional[FeatureCache]:
    """The cache of ``cache.dir`` (default folder when null), or None when ``backbone.cache`` is false."""
    c = as_typed(cfg)
    return FeatureCache(c.cache.dir) if c.backbone.cache else None


# ---------------------------------------------------------------------------------------------- stages
def extract_backbone(name: str, opts: BackboneOptions, images: torch.Tensor,
                     cache: Optional[FeatureCache]) -> BackboneFeatures:
    """Features of ``images`` from one backbone through ``cache``: read without building the network when
    every view is cached (``FeatureCache.extract_cached``), else built and extracted (missing views only)."""
    t = time.perf_counter()
    if cache is not None:
        hit = cache.extract_cached(name, opts, images)
        if hit is not None:
            fmap, stats, built_name = hit
            return BackboneFeatures(built_name, fmap, False, stats, time.perf_counter() - t)
    backbone = build_backbone(name, opts)
    options_text = None if cache is None or backbone.per_pixel else options_key(name, opts)
    fmap, stats = extract_features(backbone, images, cache, options_text)
    return BackboneFeatures(backbone.name, fmap, backbone.per_pixel, stats, time.perf_counter() - t)


def component_features(cfg: ConfigLike, images: torch.Tensor, device: str = "cpu") -> list[BackboneFeatures]:
    """Raw features of every backbone of ``backbone.name`` on ``images`` (V, 3, H, W) in [0, 1]."""
    cfg = as_typed(cfg)
    names = backbone_names(cfg)
    check_components(cfg, names)
    cache = feature_cache(cfg)
    multi = len(names) > 1
    return [extract_backbone(n, backbone_options(cfg, device, n if multi else None), images, cache) for n in names]


def fit_pca(fmap: FeatureMap, dim: int) -> tuple[FeatureMap, dict[str, Any]]:
    """PCA of a map's tokens (all views) to ``dim`` channels; the map projected, and the fit's summary."""
    tokens = fmap.features.permute(0, 2, 3, 1).reshape(-1, fmap.channels)
    pca = PCA.fit(tokens, dim)
    total = tokens.double().var(0).sum()
    explained = float(pca.explained_variance.sum() / total) if total > 0 else 1.0
    return replace(fmap, features=pca.transform_map(fmap.features)), {"pca_dim": pca.dim, "pca_explained": explained}


def minmax_normalise(fmap: FeatureMap) -> FeatureMap:
    """(x - min) / (max - min) with one global min and max over all views, tokens and channels."""
    f = fmap.features
    lo, hi = f.min(), f.max()
    return replace(fmap, features=(f - lo) / (hi - lo).clamp_min(1e-12))


def common_grid(maps: Sequence[FeatureMap]) -> tuple[int, int]:
    """The finest token grid (most tokens) among ``maps``; ties go to the first."""
    return max((m.grid for m in maps), key=lambda g: g[0] * g[1])


def resample_to_grid(fmap: FeatureMap, grid: tuple[int, int]) -> FeatureMap:
    """``fmap`` on a ``grid`` that tiles the whole image: bilinear samples at the grid's token centres,
    taken over ``fmap``'s own extent (a map already on that grid over the whole image is returned as is)."""
    H, W = fmap.image_size
    full = (0.0, 0.0, float(W), float(H))
    if fmap.grid == tuple(grid) and tuple(fmap.extent) == full:
        return fmap
    return FeatureMap(fmap.sample(*grid), fmap.image_size, full, dict(fmap.meta))


def concatenate(maps: Sequence[FeatureMap], pca_dim: int) -> tuple[FeatureMap, dict[str, Any]]:
    """The reference's feature concatenation (see the module docstring) of maps of the same views."""
    sizes = {m.image_size for m in maps}
    views = {m.features.shape[0] for m in maps}
    if len(sizes) != 1 or len(views) != 1:
        raise ValueError(f"concatenate: maps of different images (sizes {sizes}, views {views})")
    parts, pcas = [], []
    for m in maps:
        reduced, summary = fit_pca(m, pca_dim)
        pcas.append(summary)
        parts.append(minmax_normalise(reduced))
    grid = common_grid(parts)
    parts = [resample_to_grid(p, grid) for p in parts]
    joint = FeatureMap(torch.cat([p.features for p in parts], dim=1), parts[0].image_size, parts[0].extent,
                       {"components": [m.meta for m in maps]})
    out, summary = fit_pca(joint, pca_dim)
    return out, {**summary, "concat_channels": joint.channels, "concat_grid": list(grid), "component_pca": pcas}


def reduce_features(components: Sequence[BackboneFeatures], pca_dim: int) -> tuple[FeatureMap, dict[str, Any]]:
    """The probe's feature map of the train views: PCA'd (one backbone) or concatenated (several)."""
    if len(components) == 1:
        c = components[0]
        fmap, info = c.feature_map, {}
        if not c.per_pixel and fmap.channels > pca_dim:
            fmap, info = fit_pca(fmap, pca_dim)
        return fmap, info
    return concatenate([c.feature_map for c in components], pca_dim)


def prepare_features(cfg: ConfigLike, prep: _HasTrainViews, device: str = "cpu") -> PreparedFeatures:
    """Features of the train views of ``prep`` for the backbone(s) of ``cfg``, ready for the readout."""
    cfg = as_typed(cfg)
    components = component_features(cfg, prep.train.images, device)
    fmap, reduced = reduce_features(components, cfg.probe.pca_dim)
    first = components[0].feature_map
    info: dict[str, Any] = {
        "backbone": "+".join(c.name for c in components),
        "channels": first.channels if len(components) == 1 else reduced["concat_channels"],
        "grid": list(fmap.grid),
        "per_pixel": len(components) == 1 and components[0].per_pixel,
        **{k: v for k, v in reduced.items() if k in ("pca_dim", "pca_explained")},
        "components": [c.info() for c in components],
    }
    if len(components) > 1:
        info["concat"] = {k: v for k, v in reduced.items() if k not in ("pca_dim", "pca_explained")}
    feats = GaussianFeatures.from_feature_map(fmap, prep.init.valid)
    return PreparedFeatures(feats, fmap, info, list(components))


# ---------------------------------------------------------------------------------------------- picture
def feature_rgb(fmap: FeatureMap, height: int, width: int, low: float = 0.01, high: float = 0.99) -> torch.Tensor:
    """The first 3 channels of ``fmap`` as RGB in [0, 1] at (height, width) pixels: (V, 3, height, width).

    Each channel is normalised robustly with its ``low``/``high`` quantiles over all views' tokens (one
    scale for all views, so colours compare across views) and clipped; missing channels are 0. Tokens are
    resampled bilinearly over the map's pixel extent (``FeatureMap.sample``), so the picture is aligned
    with the images.
    """
    f = fmap.features[:, :3].float()
    V, C = f.shape[:2]
    flat = f.transpose(0, 1).reshape(C, -1)
    if flat.shape[1] > 1_000_000:  # quantile of a uniform subsample (torch.quantile's size limit)
        flat = flat[:, torch.linspace(0, flat.shape[1] - 1, 1_000_000).long()]
    q = torch.quantile(flat, torch.tensor([low, high]), dim=1)  # (2, C)
    lo, hi = q[0].view(1, C, 1, 1), q[1].view(1, C, 1, 1)
    rgb = ((f - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)
    if C < 3:
        rgb = torch.cat([rgb, rgb.new_zeros(V, 3 - C, *rgb.shape[-2:])], dim=1)
    return FeatureMap(rgb, fmap.image_size, fmap.extent).sample(height, width).clamp(0, 1)


def write_feature_visualisation(path: Union[str, Path], features: Union[PreparedFeatures, FeatureMap],
                                images: Optional[torch.Tensor] = None, gap: int = 4) -> Path:
    """A PNG of the probe features of the train views (a ``PreparedFeatures`` or its PCA'd ``FeatureMap``):
    per view, its first 3 PCA channels as RGB (``feature_rgb``), side by side; with ``images`` (V, 3, H, W)
    the views themselves in a row above."""
    from .io.images import write_image

    fmap = features.feature_map if isinstance(features, PreparedFeatures) else features
    H, W = fmap.image_size
    rows = [feature_rgb(fmap, H, W)]
    if images is not None:
        if tuple(images.shape[-2:]) != (H, W) or images.shape[0] != fmap.features.shape[0]:
            raise ValueError(f"write_feature_visualisation: images {tuple(images.shape)} do not match the "
                             f"features' {fmap.features.shape[0]} views of {H}x{W}")
        rows.insert(0, images.detach().float().cpu().clamp(0, 1))
    V = fmap.features.shape[0]
    canvas = torch.ones(3, len(rows) * H + (len(rows) - 1) * gap, V * W + (V - 1) * gap)
    for r, row in enumerate(rows):
        for v in range(V):
            y, x = r * (H + gap), v * (W + gap)
            canvas[:, y:y + H, x:x + W] = row[v]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, canvas)
    return path
