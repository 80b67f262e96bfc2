"""The feature stage: backbone features of the train views -> PCA -> per-Gaussian features.

Depends on the scene stage (the train images and the Gaussian grid) and on the ``backbone`` config; shared
by the three probing modes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from backbones import BackboneOptions, build_backbone
from backbones.base import FeatureMap
from probes.features import GaussianFeatures
from probes.pca import PCA

if TYPE_CHECKING:
    from .pipeline import PreparedScene


@dataclass
class PreparedFeatures:
    features: GaussianFeatures
    feature_map: FeatureMap  # PCA'd token maps of the train views (for visualisation)
    info: dict[str, Any] = field(default_factory=dict)


def backbone_options(cfg: DictConfig, device: str) -> BackboneOptions:
    b = cfg.backbone
    layer = OmegaConf.to_container(b.layer) if OmegaConf.is_list(b.layer) else b.layer
    return BackboneOptions(layer=layer, weights=b.weights, seed=int(b.seed), device=device,
                           input_size=b.input_size, variant=b.variant,
                           arch_overrides=OmegaConf.to_container(b.arch_overrides, resolve=True) or {})


def prepare_features(cfg: DictConfig, prep: "PreparedScene", device: str = "cpu") -> PreparedFeatures:
    backbone = build_backbone(str(cfg.backbone.name), backbone_options(cfg, device))
    fmap = backbone.extract(prep.train.images)
    info: dict[str, Any] = {"backbone": backbone.name, "channels": fmap.channels, "grid": list(fmap.grid),
                            "per_pixel": backbone.per_pixel}
    if not backbone.per_pixel and fmap.channels > int(cfg.probe.pca_dim):
        tokens = fmap.features.permute(0, 2, 3, 1).reshape(-1, fmap.channels)
        pca = PCA.fit(tokens, int(cfg.probe.pca_dim))
        fmap = FeatureMap(pca.transform_map(fmap.features), fmap.image_size, fmap.extent, fmap.meta)
        info["pca_dim"] = pca.dim
        info["pca_explained"] = float(pca.explained_variance.sum() / tokens.double().var(0).sum())
    feats = GaussianFeatures.from_feature_map(fmap, prep.init.valid)
    return PreparedFeatures(feats, fmap, info)
