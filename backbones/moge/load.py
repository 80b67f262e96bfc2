"""MoGe checkpoints: released variants, building from ``model_config``, strict loading, tiny test configs.

Checkpoint layout (the official ``model.pt``): ``{'model_config': dict, 'model': state_dict}``; the model is
rebuilt from its own ``model_config`` (``MoGeV1(**cfg)`` / ``MoGeV2(**cfg)``) and the state dict is loaded
**strictly** for both versions (the official v2 loader is lenient; here every missing / unexpected key and
every shape mismatch is reported, naming the file). A config with a ``neck`` entry is MoGe-2, else MoGe-1.

``RELEASED_CONFIGS`` are the architectures of the released checkpoints as documented in
docs/moge_reference.md (inferred from the training configs and the published parameter counts, not read
from the files); they are used to build ``random-moge`` controls and to check key names and sizes. Loading a
real checkpoint always uses the file's own ``model_config``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch

from feat2gs.errors import InputError

from ..checkpoint import compare_state, torch_load
from ..weights import WeightsSpec, resolve_weights
from .inference import MoGeBase
from .v1 import MoGeV1
from .v2 import MoGeV2

CHECKPOINT_FILE = "model.pt"
VERSIONS = {"v1": MoGeV1, "v2": MoGeV2}


def _v1_config(backbone: str) -> dict:
    return dict(encoder=backbone, remap_output="exp", intermediate_layers=4, dim_proj=512,
                dim_upsample=[256, 128, 64], dim_times_res_block_hidden=2, num_res_blocks=2,
                num_tokens_range=[1200, 2500], last_conv_channels=32, last_conv_size=1)


def _v2_config(backbone: Union[str, dict], dim: int, taps, widths: list[int], neck_res: int, normal: bool,
               num_tokens_range=(1200, 3600), scale_dims: Optional[list[int]] = None) -> dict:
    """A MoGe-2 config in the released layout: 5-level pyramid ``widths`` (level 0 = ``dim``), 3 transposed-
    conv and 1 bilinear resamplers, no norms in the residual blocks, heads with one res block per middle level."""
    widths = [dim] + list(widths[1:])
    resamplers = ["conv_transpose"] * (len(widths) - 2) + ["bilinear"]
    inner = lambda k: [0] + [k] * (len(widths) - 2) + [0]  # noqa: E731

    def head(out: int) -> dict:
        return dict(dim_in=list(widths), dim_out=[None] * (len(widths) - 1) + [out], dim_res_blocks=list(widths),
                    num_res_blocks=inner(1), res_block_in_norm="none", res_block_hidden_norm="none",
                    resamplers=list(resamplers))

    cfg = dict(
        encoder=dict(backbone=backbone, intermediate_layers=list(taps), dim_out=dim),
        neck=dict(dim_in=[dim + 2] + [2] * (len(widths) - 1), dim_out=[None] * len(widths),
                  dim_res_blocks=list(widths), num_res_blocks=inner(neck_res), res_block_in_norm="none",
                  res_block_hidden_norm="none", resamplers=list(resamplers)),
        points_head=head(3), mask_head=head(1),
        scale_head=dict(dims=scale_dims or [dim, dim, dim, 1]),
        remap_output="exp", num_tokens_range=list(num_tokens_range),
    )
    if normal:
        cfg["normal_head"] = head(3)
    return cfg


_PYRAMID = [None, 256, 128, 64, 32]

#: the released checkpoints' architectures (see the module docstring)
RELEASED_CONFIGS: dict[str, dict] = {
    "v1-vitl": _v1_config("dinov2_vitl14"),
    "v2-vitl": _v2_config("dinov2_vitl14", 1024, [5, 11, 17, 23], _PYRAMID, 2, normal=False),
    "v2-vitl-normal": _v2_config("dinov2_vitl14", 1024, [5, 11, 17, 23], _PYRAMID, 2, normal=True),
    "v2-vitb-normal": _v2_config("dinov2_vitb14", 768, [5, 11], _PYRAMID, 1, normal=True),
    "v2-vits-normal": _v2_config("dinov2_vits14", 384, [5, 11], _PYRAMID, 1, normal=True),
}


@dataclass(frozen=True)
class Variant:
    name: str
    version: str  # "v1" | "v2"
    weights: WeightsSpec
    description: str


def _variant(name: str, repo: str, version: str, description: str) -> Variant:
    return Variant(name, version, WeightsSpec(f"moge-{name}", repo, (CHECKPOINT_FILE,)), description)


VARIANTS: dict[str, Variant] = {v.name: v for v in [
    _variant("v1-vitl", "Ruicheng/moge-vitl", "v1", "MoGe-1 ViT-L (314M): affine-invariant points + mask"),
    _variant("v2-vitl", "Ruicheng/moge-2-vitl", "v2", "MoGe-2 ViT-L (326M): metric points + mask"),
    _variant("v2-vitl-normal", "Ruicheng/moge-2-vitl-normal", "v2", "MoGe-2 ViT-L (331M): + normals"),
    _variant("v2-vitb-normal", "Ruicheng/moge-2-vitb-normal", "v2", "MoGe-2 ViT-B (104M): + normals"),
    _variant("v2-vits-normal", "Ruicheng/moge-2-vits-normal", "v2", "MoGe-2 ViT-S (35M): + normals"),
]}
DEFAULT_VARIANT = "v2-vitl-normal"
#: every variant's weights by spec name (``moge-<variant>``), for ``feat2gs weights fetch``
WEIGHTS_SPECS: dict[str, WeightsSpec] = {v.weights.name: v.weights for v in VARIANTS.values()}


def get_variant(name: Optional[str]) -> Variant:
    name = name or DEFAULT_VARIANT
    if name not in VARIANTS:
        raise InputError("backbone.variant", f"unknown MoGe variant {name!r}; one of {', '.join(VARIANTS)}")
    return VARIANTS[name]


def released_config(variant: str) -> dict:
    """A copy of a released variant's ``model_config``."""
    return copy.deepcopy(RELEASED_CONFIGS[get_variant(variant).name])


def detect_version(config: dict) -> str:
    """``'v2'`` when the config has a ``neck`` (MoGe-2 requires one), else ``'v1'``."""
    return "v2" if "neck" in config else "v1"


def build_model(config: dict, version: Optional[str] = None, where: str = "model_config") -> MoGeBase:
    """A MoGe model (random weights) from a ``model_config`` dict; ``version`` defaults to the detected one."""
    if not isinstance(config, dict):
        raise InputError(where, f"model_config must be a dict, got {type(config).__name__}")
    found = detect_version(config)
    if version is not None and version != found:
        raise InputError(where, f"expected a MoGe {version} config, but it describes a MoGe {found} model "
                                f"(keys: {', '.join(sorted(config))})")
    try:
        return VERSIONS[found](**copy.deepcopy(config))
    except (TypeError, ValueError, KeyError) as e:
        raise InputError(where, f"not a valid MoGe {found} model_config: {e}") from None


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def state_dict_mismatch(model: torch.nn.Module, state: dict[str, Any]) -> list[str]:
    """Human-readable problems between a model's state dict and ``state``: every missing key, every
    unexpected key, every shape mismatch (empty when they match exactly)."""
    want = model.state_dict()
    m = compare_state(want, state)
    return ([f"missing key {k} {list(want[k].shape)}" for k in m.missing]
            + [f"unexpected key {k}" for k in m.unexpected]
            + [f"key {k} is a {type(state[k]).__name__}, not a tensor" for k in m.not_tensors]
            + [f"shape mismatch for {k}: checkpoint {list(c)}, model_config gives {list(w)}" for k, c, w in m.shapes])


def read_checkpoint(path: Union[str, Path]) -> tuple[dict, dict[str, torch.Tensor]]:
    """(model_config, state_dict) of a MoGe ``model.pt`` (``checkpoint.torch_load``: weights only,
    memory-mapped when the file allows it)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "MoGe checkpoint file does not exist")
    obj = torch_load(path, mmap=True)
    if not isinstance(obj, dict) or "model_config" not in obj or "model" not in obj:
        found = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise InputError(str(path), "not a MoGe checkpoint: expected a dict {'model_config': dict, 'model': "
                                    f"state_dict}}, found {found}")
    config, state = obj["model_config"], obj["model"]
    if not isinstance(config, dict):
        raise InputError(str(path), f"'model_config' must be a dict, got {type(config).__name__}")
    if not isinstance(state, dict):
        raise InputError(str(path), f"'model' must be a state dict, got {type(state).__name__}")
    return config, state


def model_from_state(config: dict, state: dict[str, Any], version: Optional[str] = None,
                     where: str = "checkpoint") -> MoGeBase:
    """Build the model described by ``config`` and load ``state`` strictly (float32, eval mode).

    The model is built on the meta device and the state tensors are assigned (no random init, no second
    copy of the weights). Raises ``InputError`` (prefixed with ``where``) listing every problem."""
    with torch.device("meta"):
        model = build_model(config, version, where=f"{where}: model_config")
    problems = state_dict_mismatch(model, state)
    if problems:
        raise InputError(where, f"weights do not match the MoGe {model.version} model described by its "
                                f"model_config ({len(problems)} problems):\n  " + "\n  ".join(problems))
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def load_checkpoint(path: Union[str, Path], version: Optional[str] = None, device: Union[str, torch.device] = "cpu",
                    ) -> MoGeBase:
    """The model of a MoGe ``model.pt``, built from the file's own ``model_config``, weights loaded strictly.
    Raises ``InputError`` naming the file for anything that does not match."""
    config, state = read_checkpoint(path)
    return model_from_state(config, state, version, where=str(path)).to(device)


def load_pretrained(variant: Optional[str] = None, weights: Optional[str] = None,
                    device: Union[str, torch.device] = "cpu") -> MoGeBase:
    """A released variant from ``weights`` (a file or a folder holding model.pt) or the Hugging Face cache
    (never downloaded here; ``WeightsNotFoundError`` says how to fetch it)."""
    v = get_variant(variant)
    return load_checkpoint(resolve_weights(v.weights, weights), version=v.version, device=device)


def save_checkpoint(model: MoGeBase, config: dict, path: Union[str, Path]) -> None:
    """Write ``{'model_config': config, 'model': state_dict}`` (the official layout)."""
    torch.save({"model_config": copy.deepcopy(config), "model": model.state_dict()}, str(path))


def tiny_config(version: str = "v2", dim: int = 64, depth: int = 2, heads: int = 2, normal: bool = True,
                grid: int = 8) -> dict:
    """A small random-weight architecture for tests (a ``depth``-block, ``dim``-wide ViT whose stored
    positional grid is ``grid`` x ``grid``). Same code paths as the releases; v1 keeps GroupNorm widths >= 32."""
    vit = dict(embed_dim=dim, depth=depth, num_heads=heads, img_size=14 * grid)
    if version == "v1":
        return dict(encoder=vit, remap_output="exp", intermediate_layers=2, dim_proj=32, dim_upsample=[32, 32, 32],
                    dim_times_res_block_hidden=1, num_res_blocks=1, num_tokens_range=[16, 36],
                    last_conv_channels=32, last_conv_size=1)
    if version == "v2":
        return _v2_config(vit, dim, list(range(depth)), [dim, 32, 16, 16, 8], 1, normal=normal,
                          num_tokens_range=(16, 36), scale_dims=[dim, 32, 1])
    raise ValueError(f"version must be 'v1' or 'v2', got {version!r}")


def calibrate_mask(model, x: torch.Tensor, fraction: float, num_tokens: int = 30):
    """Shift the mask head's output bias so that the model's mask keeps about ``fraction`` of the pixels of
    ``x`` (a random-weight model's mask is otherwise all or nothing); returns the model. For tests and
    random-weight runs."""
    with torch.no_grad():
        raw = model(x, num_tokens)
        if hasattr(model, "mask_head"):  # v2: a separate mask head with a sigmoid output
            logit = torch.logit(raw.mask.clamp(1e-6, 1 - 1e-6))
            model.mask_head.output_blocks[-1].bias -= torch.quantile(logit, 1 - fraction)
        else:  # v1: the mask is a channel of the shared head, thresholded at ``mask_threshold``
            model.head.output_block[1][-1].bias += model.mask_threshold - torch.quantile(raw.mask, 1 - fraction)
    return model

