"""Backbones: one registry (``backbones.registry``), one small wrapper module per family.

Importing this package registers every family. ``build_backbone("random-<name>")`` gives the same network
with fixed-seed random weights.
"""

from . import (clip, croco, dino, dinov2, dinov3, iuvrgb, mae, midas, moge, noise, radio, sam, sd,  # noqa: F401
               vggt, vit)  # registration side effects; each library is imported only when a model is built
from .base import Backbone, FeatureMap
from .registry import (BACKBONES, BackboneInfo, BackboneOptions, backbone_info, backbone_names,
                       build_backbone)

__all__ = ["Backbone", "FeatureMap", "BACKBONES", "BackboneInfo", "BackboneOptions", "backbone_info",
           "backbone_names", "build_backbone"]
