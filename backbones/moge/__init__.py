"""MoGe-1 / MoGe-2 monocular geometry (a clean re-implementation from the architecture description) and the
``moge`` probe backbone (registered on import).

* ``load_pretrained(variant, weights)`` / ``load_checkpoint(path)``: a released model from ``model.pt``
  (strict), ``model.infer(image) -> MoGeResult`` (points, depth, mask, normalised intrinsics, normal,
  metric scale).
* ``build_model(model_config)``, ``tiny_config(version)``: random-weight models (tests, controls).
"""

from . import backbone  # noqa: F401  (registers ``moge``)
from .dinov2 import DINOV2_ARCHS, DinoVisionTransformer, ViTConfig
from .inference import MoGeBase, MoGeRaw, MoGeResult
from .load import (DEFAULT_VARIANT, RELEASED_CONFIGS, VARIANTS, WEIGHTS_SPECS, build_model, detect_version,
                   load_checkpoint, load_pretrained, param_count, read_checkpoint, released_config,
                   save_checkpoint, tiny_config)
from .v1 import MoGeV1
from .v2 import MoGeV2

__all__ = ["DINOV2_ARCHS", "DinoVisionTransformer", "ViTConfig", "MoGeBase", "MoGeRaw", "MoGeResult",
           "DEFAULT_VARIANT", "RELEASED_CONFIGS", "VARIANTS", "WEIGHTS_SPECS", "build_model", "detect_version",
           "load_checkpoint", "load_pretrained", "param_count", "read_checkpoint", "released_config",
           "save_checkpoint", "tiny_config", "MoGeV1", "MoGeV2"]
