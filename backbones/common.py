"""Shared machinery of patch-token backbones: sizing, normalisation, layer selection, random controls.

A family wrapper subclasses ``TokenBackbone`` and implements ``build_model`` and ``forward_layers``;
everything else (input sizing to a patch multiple, normalisation, batching, multi-layer concatenation,
the FeatureMap extent, the cache key, fixed-seed random weights) lives here once.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F

from feat2gs.errors import InputError
from feat2gs.scene import working_size

from .base import Backbone, FeatureMap
from .registry import BackboneInfo, BackboneOptions
from .weights import file_fingerprint, resolve_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)  # maps [0, 1] to [-1, 1]

#: bump when preprocessing changes, so cached features are recomputed
PREPROCESS_VERSION = 1


def layer_indices(layer: Any, num_layers: int) -> list[int]:
    """Block indices for ``layer``: an int (negative counts from the end, -1 = last block) or a list."""
    layers = list(layer) if isinstance(layer, (list, tuple)) else [layer]
    out = []
    for l in layers:
        i = int(l)
        j = i + num_layers if i < 0 else i
        if not 0 <= j < num_layers:
            raise InputError("backbone.layer", f"{i} is out of range for a model with {num_layers} blocks "
                                               f"(0..{num_layers - 1}, or -1..-{num_layers} from the end)")
        out.append(j)
    return out


def input_size(height: int, width: int, multiple: int, long_side: Optional[int] = None) -> tuple[int, int]:
    """Model input (h, w): long side ``long_side`` (default: the image's own), both rounded to ``multiple``."""
    w, h = working_size(width, height, max(height, width) if long_side is None else long_side, multiple)
    return h, w


def resize_normalize(images: torch.Tensor, size: tuple[int, int], mean: Sequence[float],
                     std: Sequence[float]) -> torch.Tensor:
    """Resize images in [0, 1] to ``size`` (bicubic, antialiased when shrinking), then (x - mean) / std."""
    x = images
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def seeded_init(seed: int):
    """Context for building a model whose random weights depend only on ``seed``."""
    ctx = torch.random.fork_rng(devices=[])

    class _Ctx:
        def __enter__(self):
            ctx.__enter__()
            torch.manual_seed(seed)

        def __exit__(self, *exc):
            return ctx.__exit__(*exc)

    return _Ctx()


class TokenBackbone(Backbone):
    """Base of every patch-token backbone.

    Subclasses set ``mean``/``std`` (their own normalisation), ``patch`` and ``num_layers`` and implement
    ``build_model(pretrained_path)`` and ``forward_layers(x, layers) -> list[(B, C, h, w)]``. The image is
    resized (not padded) to a patch multiple, so the token grid covers the whole image; a family that must
    pad crops the padded tokens in ``forward_layers`` and returns the covered fraction via ``extent_of``.
    """

    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD
    patch: int = 16
    num_layers: int = 12
    batch_size: int = 4
    #: True for multi-view models (VGGT): ``forward_layers`` gets all V views of the scene in one batch,
    #: because the views attend to each other (memory grows with V; ``batch_size`` is ignored).
    joint_views: bool = False
    #: long side of the model input when ``backbone.input_size`` is unset (None: the image's own)
    default_long_side: Optional[int] = None
    #: both input sides are rounded to this multiple (None: ``patch``), e.g. 64 for the SD U-Net
    size_multiple: Optional[int] = None

    def __init__(self, opts: BackboneOptions, info: BackboneInfo):
        self.opts = opts
        self.info = info
        self.name = opts.name
        self.layers_requested = opts.layer if opts.layer is not None else -1
        #: the checkpoint file the weights came from (None: random weights)
        self.weights_file = None
        if opts.random_init or info.weights is None:
            with seeded_init(opts.seed):
                self.model = self.build_model(None)
        else:
            self.weights_file = resolve_weights(info.weights, opts.weights)
            self.model = self.build_model(self.weights_file)
        self.model.eval().requires_grad_(False).to(opts.device)
        self.layers = layer_indices(self.layers_requested, self.num_layers)

    # ----------------------------------------------------------------- to implement
    @abstractmethod
    def build_model(self, pretrained_path) -> torch.nn.Module:
        """The network; random (seeded by the caller) when ``pretrained_path`` is None."""

    @abstractmethod
    def forward_layers(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        """Token maps (B, C, h, w) of the given blocks for a normalised input batch x."""

    # ----------------------------------------------------------------- shared
    def model_input_size(self, height: int, width: int) -> tuple[int, int]:
        return input_size(height, width, self.size_multiple or self.patch,
                          self.opts.input_size or self.default_long_side)

    def extent_of(self, image_hw: tuple[int, int], input_hw: tuple[int, int], grid: tuple[int, int]):
        """Pixel extent (x0, y0, x1, y1) in the original image covered by the token grid."""
        H, W = image_hw
        return (0.0, 0.0, float(W), float(H))

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> FeatureMap:
        V, _, H, W = images.shape
        size = self.model_input_size(H, W)
        outs = []
        step = V if self.joint_views else self.batch_size
        for i in range(0, V, step):
            x = resize_normalize(images[i:i + step].to(self.opts.device), size, self.mean, self.std)
            maps = self.forward_layers(x, self.layers)
            outs.append(torch.cat([m.float() for m in maps], dim=1).cpu())
        feats = torch.cat(outs, 0)
        extent = self.extent_of((H, W), size, tuple(feats.shape[-2:]))
        return FeatureMap(feats, image_size=(H, W), extent=extent,
                          meta={"backbone": self.name, "input_size": size, "layers": self.layers})

    def cache_key(self) -> dict[str, Any]:
        w = self.info.weights
        return {
            "name": self.name,
            "family": self.info.family,
            "model": None if w is None else w.repo_id,
            "revision": None if w is None else w.revision,
            "weights_path": None if self.opts.random_init else self.opts.weights,
            "weights_file": file_fingerprint(self.weights_file),
            "random_seed": self.opts.seed if self.opts.random_init else None,
            "layers": self.layers,
            "input_size": self.opts.input_size or self.default_long_side,
            "variant": self.opts.variant,
            "arch_overrides": dict(sorted(self.opts.arch_overrides.items())),
            "preprocess_version": PREPROCESS_VERSION,
        }
