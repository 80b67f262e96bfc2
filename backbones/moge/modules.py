"""Building blocks shared by MoGe-1 and MoGe-2 (module names match the official checkpoints).

* ``ResidualConvBlock``: ``layers = [in-norm, act, conv3x3, hidden-norm, act, conv3x3]`` + skip (identity, or a
  1x1 conv when the widths differ). MoGe-1's block is the case in-norm ``layer_norm`` (GroupNorm(1, C)) and
  hidden-norm ``group_norm`` (GroupNorm(C/32, C)) or ``layer_norm``; the MoGe-2 releases use ``none`` for both.
  All 3x3 convolutions pad by replication.
* ``Resampler``: x2 up/down-sampling stages of the MoGe-2 ``ConvStack``.
* ``ConvStack``: the MoGe-2 neck/head, a top-down pyramid whose level i has 2^i times the token resolution.
* ``MLP``: Linear/ReLU stack (MoGe-2 metric-scale head).
* ``DINOv2Encoder``: MoGe-2's encoder (resize -> normalise -> ViT taps -> 1x1 projections, summed).
* ``uv_channels`` and ``remap_points``: the view-plane coordinates (``feat2gs.geometry.focal.
  normalized_view_plane_uv``: pixel centres, half image diagonal = 1) concatenated to decoder features, and the
  output parameterisation of the point head.
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from feat2gs.geometry.focal import normalized_view_plane_uv

from ..common import IMAGENET_MEAN, IMAGENET_STD
from .dinov2 import PATCH, DinoVisionTransformer

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "silu": nn.SiLU,
    "elu": nn.ELU,
}
NORMS = ("group_norm", "layer_norm", "instance_norm", "none")
RESAMPLERS = ("conv_transpose", "bilinear", "nearest", "pixel_shuffle", "pixel_unshuffle", "avg_pool", "max_pool")
REMAPS = ("linear", "sinh", "exp", "sinh_exp")


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def _norm(kind: str, channels: int) -> nn.Module:
    """``group_norm``: 32 channels per group; ``layer_norm``: one group; ``instance_norm``; ``none``."""
    if kind == "group_norm":
        if channels < 32:
            raise ValueError(f"group_norm needs at least 32 channels (32 per group), got {channels}")
        return nn.GroupNorm(channels // 32, channels)
    if kind == "layer_norm":
        return nn.GroupNorm(1, channels)
    if kind == "instance_norm":
        return nn.InstanceNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; one of {', '.join(NORMS)}")


def _conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1, padding_mode="replicate")


def _nearest_init_(conv_t: nn.ConvTranspose2d) -> None:
    """Start a stride-k transposed conv as nearest-neighbour upsampling (every tap = the top-left one), the
    initialisation MoGe uses; only matters for random weights."""
    with torch.no_grad():
        conv_t.weight.copy_(conv_t.weight[:, :, :1, :1].expand_as(conv_t.weight))


class ResidualConvBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: Optional[int] = None, hidden_channels: Optional[int] = None,
                 activation: str = "relu", in_norm: str = "layer_norm", hidden_norm: str = "group_norm"):
        super().__init__()
        out_channels = out_channels or in_channels
        hidden_channels = hidden_channels or in_channels
        self.layers = nn.Sequential(
            _norm(in_norm, in_channels),
            _activation(activation),
            _conv3x3(in_channels, hidden_channels),
            _norm(hidden_norm, hidden_channels),
            _activation(activation),
            _conv3x3(hidden_channels, out_channels),
        )
        self.skip_connection = (nn.Conv2d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels
                                else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x) + self.skip_connection(x)


class Resampler(nn.Sequential):
    """Resolution change by ``scale_factor`` then (or before) a 3x3 conv; the submodule order fixes key names:

    ``conv_transpose``: [ConvTranspose(k=s, stride=s), conv3x3]; ``bilinear``/``nearest``: [Upsample, conv3x3];
    ``pixel_shuffle``: [conv3x3 to out*s^2, PixelShuffle, conv3x3]; ``pixel_unshuffle``: [PixelUnshuffle,
    conv3x3]; ``avg_pool``/``max_pool``: [conv3x3, pool]. The MoGe-2 releases use conv_transpose and bilinear.
    """

    def __init__(self, in_channels: int, out_channels: int, type_: str, scale_factor: int = 2):
        s = scale_factor
        if type_ == "conv_transpose":
            up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=s, stride=s)
            _nearest_init_(up)
            layers = [up, _conv3x3(out_channels, out_channels)]
        elif type_ in ("bilinear", "nearest"):
            up = (nn.Upsample(scale_factor=s, mode="bilinear", align_corners=False) if type_ == "bilinear"
                  else nn.Upsample(scale_factor=s, mode="nearest"))
            layers = [up, _conv3x3(in_channels, out_channels)]
        elif type_ == "pixel_shuffle":
            first = _conv3x3(in_channels, out_channels * s * s)
            with torch.no_grad():  # every sub-pixel starts as a copy of the first (nearest-like start)
                w = first.weight.view(out_channels, s * s, *first.weight.shape[1:])
                w.copy_(w[:, :1].expand_as(w))
                b = first.bias.view(out_channels, s * s)
                b.copy_(b[:, :1].expand_as(b))
            layers = [first, nn.PixelShuffle(s), _conv3x3(out_channels, out_channels)]
        elif type_ == "pixel_unshuffle":
            layers = [nn.PixelUnshuffle(s), _conv3x3(in_channels * s * s, out_channels)]
        elif type_ == "avg_pool":
            layers = [_conv3x3(in_channels, out_channels), nn.AvgPool2d(s, s)]
        elif type_ == "max_pool":
            layers = [_conv3x3(in_channels, out_channels), nn.MaxPool2d(s, s)]
        else:
            raise ValueError(f"unknown resampler {type_!r}; one of {', '.join(RESAMPLERS)}")
        super().__init__(*layers)


def _per_level(value, n: int, name: str) -> list:
    """A per-level list, or one value repeated for every level (the official configs use both forms)."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"ConvStack.{name}: {len(value)} entries for {n} levels")
        return list(value)
    return [value] * n


class ConvStack(nn.Module):
    """MoGe-2 neck / head: L levels, level i at 2^i x the token grid.

    For each level i: ``x = input_blocks[i](in[i])`` (level 0) or ``x + input_blocks[i](in[i])`` (skipped when
    ``in[i]`` is None), then ``res_blocks[i]``, ``out[i] = output_blocks[i](x)``, and ``x = resamplers[i](x)``
    before the next level. ``dim_in``/``dim_out`` entries of None are identities.
    """

    def __init__(self, dim_in: Union[Optional[int], Sequence[Optional[int]]], dim_res_blocks: Sequence[int],
                 dim_out: Union[Optional[int], Sequence[Optional[int]]], resamplers: Union[str, Sequence[str]],
                 dim_times_res_block_hidden: int = 1, num_res_blocks: Union[int, Sequence[int]] = 1,
                 res_block_in_norm: str = "layer_norm", res_block_hidden_norm: str = "group_norm",
                 activation: str = "relu"):
        super().__init__()
        dims = list(dim_res_blocks)
        n = len(dims)
        dim_in = _per_level(dim_in, n, "dim_in")
        dim_out = _per_level(dim_out, n, "dim_out")
        nres = _per_level(num_res_blocks, n, "num_res_blocks")
        kinds = _per_level(resamplers, n - 1, "resamplers")
        self.input_blocks = nn.ModuleList([
            nn.Conv2d(ci, c, kernel_size=1) if ci is not None else nn.Identity() for ci, c in zip(dim_in, dims)])
        self.resamplers = nn.ModuleList([
            Resampler(a, b, kind) for a, b, kind in zip(dims[:-1], dims[1:], kinds)])
        self.res_blocks = nn.ModuleList([
            nn.Sequential(*[ResidualConvBlock(c, c, dim_times_res_block_hidden * c, activation=activation,
                                              in_norm=res_block_in_norm, hidden_norm=res_block_hidden_norm)
                            for _ in range(k)])
            for c, k in zip(dims, nres)])
        self.output_blocks = nn.ModuleList([
            nn.Conv2d(c, co, kernel_size=1) if co is not None else nn.Identity() for co, c in zip(dim_out, dims)])

    def forward(self, in_features: Sequence[Optional[torch.Tensor]], upto: Optional[int] = None) -> list[torch.Tensor]:
        """Outputs of every level (or of levels 0..``upto`` only, skipping the rest of the work)."""
        n = len(self.res_blocks)
        if len(in_features) != n:
            raise ValueError(f"ConvStack: {len(in_features)} inputs for {n} levels")
        last = n - 1 if upto is None else upto
        outs = []
        x = None
        for i in range(last + 1):
            f = in_features[i]
            if f is not None:
                f = self.input_blocks[i](f)
                x = f if x is None else x + f
            if x is None:
                raise ValueError("ConvStack: level 0 needs an input")
            x = self.res_blocks[i](x)
            outs.append(self.output_blocks[i](x))
            if i < last:
                x = self.resamplers[i](x)
        return outs


class MLP(nn.Sequential):
    """``dims = [d0, d1, ..., dk]``: Linear(d0, d1), ReLU, ..., Linear(d_{k-1}, dk) (no final activation)."""

    def __init__(self, dims: Sequence[int]):
        dims = list(dims)
        if len(dims) < 2:
            raise ValueError(f"MLP dims needs at least 2 entries, got {dims}")
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-2], dims[1:-1]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(dims[-2], dims[-1]))
        super().__init__(*layers)


def register_imagenet_buffers(module: nn.Module) -> None:
    """``image_mean`` / ``image_std`` (1, 3, 1, 1) buffers; they are part of MoGe's state dicts."""
    module.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
    module.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))


def fuse_taps(taps, projections: nn.ModuleList, rows: int, cols: int) -> torch.Tensor:
    """Sum of per-tap 1x1 projections of ViT patch tokens [(B, rows*cols, D), ...] -> (B, C, rows, cols)."""
    if len(taps) != len(projections):
        raise ValueError(f"{len(taps)} ViT taps for {len(projections)} projections")
    out = None
    for proj, tokens in zip(projections, taps):
        grid = tokens.transpose(1, 2).unflatten(2, (rows, cols)).contiguous()
        y = proj(grid)
        out = y if out is None else out + y
    return out


class DINOv2Encoder(nn.Module):
    """MoGe-2 encoder: image in [0, 1] (B, 3, H, W) -> resized bilinearly (antialiased) to (14*rows, 14*cols),
    ImageNet-normalised (resize first, then normalise), ViT taps ``intermediate_layers`` (LayerNorm-ed),
    per-tap 1x1 conv to ``dim_out``, summed -> (B, dim_out, rows, cols). The class token returned is the last
    tap's (LayerNorm-ed)."""

    def __init__(self, backbone, intermediate_layers: Union[int, Sequence[int]], dim_out: int, **ignored):
        super().__init__()
        if ignored:
            warnings.warn(f"MoGe v2 encoder: ignoring unknown config keys {sorted(ignored)}")
        self.intermediate_layers = (intermediate_layers if isinstance(intermediate_layers, int)
                                    else [int(i) for i in intermediate_layers])
        self.backbone = DinoVisionTransformer(backbone)
        n = intermediate_layers if isinstance(intermediate_layers, int) else len(intermediate_layers)
        d = self.backbone.embed_dim
        self.output_projections = nn.ModuleList([nn.Conv2d(d, dim_out, kernel_size=1) for _ in range(n)])
        register_imagenet_buffers(self)

    def preprocess(self, image: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        """Image in [0, 1] -> the normalised ViT input (B, 3, 14*rows, 14*cols)."""
        x = F.interpolate(image, (rows * PATCH, cols * PATCH), mode="bilinear", align_corners=False, antialias=True)
        return (x - self.image_mean) / self.image_std

    def taps(self, image: torch.Tensor, rows: int, cols: int, layers=None):
        """LayerNorm-ed ViT outputs ((B, rows*cols, D), (B, D)) of ``layers`` (default: the model's taps)."""
        n = self.intermediate_layers if layers is None else layers
        return self.backbone.get_intermediate_layers(self.preprocess(image, rows, cols), n=n,
                                                     return_class_token=True)

    def forward(self, image: torch.Tensor, rows: int, cols: int, return_class_token: bool = False):
        taps = self.taps(image, rows, cols)
        fused = fuse_taps([t for t, _ in taps], self.output_projections, rows, cols)
        return (fused, taps[-1][1]) if return_class_token else fused


def uv_channels(batch: int, height: int, width: int, aspect_ratio: float, dtype, device) -> torch.Tensor:
    """The view-plane UV of a (height, width) grid for an image of ``aspect_ratio`` (W/H) as a
    (batch, 2, height, width) map to concatenate to features."""
    uv = normalized_view_plane_uv(width, height, aspect_ratio, dtype=dtype, device=device)
    return uv.permute(2, 0, 1).unsqueeze(0).expand(batch, -1, -1, -1)


def remap_points(points: torch.Tensor, mode: str) -> torch.Tensor:
    """Map the point head's raw (..., 3) output to (x, y, z). ``exp`` (the releases): channels are
    (x/z, y/z, log z). ``sinh``: sinh of all; ``sinh_exp``: (sinh x, sinh y, exp z); ``linear``: unchanged."""
    if mode == "linear":
        return points
    if mode == "sinh":
        return torch.sinh(points)
    xy, z = points.split([2, 1], dim=-1)
    if mode == "exp":
        z = torch.exp(z)
        return torch.cat([xy * z, z], dim=-1)
    if mode == "sinh_exp":
        return torch.cat([torch.sinh(xy), torch.exp(z)], dim=-1)
    raise ValueError(f"unknown remap_output {mode!r}; one of {', '.join(REMAPS)}")
