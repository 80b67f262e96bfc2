"""Shared pieces of the hand-read ViT families (transformers: MAE, MiDaS/DPT, DINOv3; open_clip: CLIP).

* ``hf_config``: a transformers config from the official ``config.json`` values of the model's Hugging Face
  repository (written out in the family module, so no config download is needed) plus test overrides.
* ``load_hf_pretrained``: ``from_pretrained`` from the local checkpoint file -- transformers' own loader,
  which converts older checkpoint layouts (e.g. ``attention.attention.query`` -> ``q_proj``) to the
  installed classes -- made strict by ``checkpoint.check_loading_info``: every missing, unexpected or
  mismatched key is an InputError naming the file, except keys of modules our forward never runs
  (``unused`` prefixes: decoders, necks, heads).
* ``run_blocks`` / ``tokens_to_map``: run a block list collecting the selected outputs; (B, h*w, C) tokens in
  row-major order -> a (B, C, h, w) map.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import torch
import torch.nn as nn

from feat2gs.errors import InputError

from .checkpoint import check_loading_info
from .common import TokenBackbone

#: the file names ``from_pretrained`` looks for in a folder, by checkpoint format
_HF_WEIGHT_NAMES = {".safetensors": "model.safetensors", ".bin": "pytorch_model.bin"}


def hf_config(config_cls, official: Mapping[str, Any], overrides: Mapping[str, Any]):
    """``config_cls(**official, **overrides)``; an override the config class does not know is an InputError
    on ``backbone.arch_overrides`` (transformers would otherwise store it silently)."""
    known = set(official) | set(config_cls().to_dict())
    bad = sorted(set(overrides) - known)
    if bad:
        raise InputError("backbone.arch_overrides", f"unknown field(s) {bad} for {config_cls.__name__}")
    return config_cls(**{**dict(official), **dict(overrides)})


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' load report and progress bar (we raise on every problem ourselves)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _weights_folder(path: Path):
    """A folder holding ``path`` under the name ``from_pretrained`` expects (a temporary link if needed)."""
    expected = _HF_WEIGHT_NAMES.get(path.suffix)
    if expected is None:
        raise InputError(str(path), f"unsupported checkpoint format {path.suffix!r}; expected one of "
                                    f"{sorted(_HF_WEIGHT_NAMES.values())}")
    if path.name == expected:
        yield path.parent
        return
    with tempfile.TemporaryDirectory(prefix="feat2gs-weights-") as tmp:
        os.symlink(path.resolve(), Path(tmp) / expected)
        yield Path(tmp)


def load_hf_pretrained(model_cls, config, path, unused: Sequence[str] = (), **model_kwargs: Any) -> nn.Module:
    """``model_cls.from_pretrained`` of the checkpoint file ``path`` with our ``config``, strictly.

    ``unused``: key prefixes (in the installed class's naming) of modules our forward never runs; they may
    be missing from or unexpected in the checkpoint. Anything else that does not match raises an InputError
    naming the file. ``model_kwargs`` go to the model's constructor (e.g. ``add_pooling_layer=False``).
    """
    path = Path(path)
    try:
        with _quiet_transformers(), _weights_folder(path) as folder:
            # mismatched shapes are reported (and raised on below) instead of aborting without the key names
            model, info = model_cls.from_pretrained(str(folder), config=config, local_files_only=True,
                                                    output_loading_info=True, ignore_mismatched_sizes=True,
                                                    dtype=torch.float32, **model_kwargs)
    except InputError:
        raise
    except Exception as e:  # unreadable or corrupt files
        raise InputError(str(path), f"cannot load into {model_cls.__name__}: {type(e).__name__}: {e}") from None
    check_loading_info(info, str(path), unused=unused, model_name=model_cls.__name__)
    return model


def run_blocks(blocks: Sequence[nn.Module], x: torch.Tensor, layers: Sequence[int],
               call: Optional[Callable[[nn.Module, torch.Tensor], torch.Tensor]] = None) -> list[torch.Tensor]:
    """Outputs of ``blocks[i]`` for i in ``layers`` (in that order), stopping after the deepest one."""
    wanted = set(layers)
    out = {}
    for i, blk in enumerate(blocks[:max(layers) + 1]):
        x = call(blk, x) if call is not None else blk(x)
        if i in wanted:
            out[i] = x
    return [out[i] for i in layers]


def in_requested_order(layers: Sequence[int], outs_by_depth: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Reorder block outputs that a library returned in increasing block order (for ``sorted(set(layers))``)
    into the order of ``layers`` (which may be unsorted or repeat a block)."""
    by_index = dict(zip(sorted(set(layers)), outs_by_depth))
    return [by_index[i] for i in layers]


def tokens_to_map(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, h*w, C) patch tokens in row-major image order -> (B, C, h, w)."""
    B, n, C = tokens.shape
    if n != h * w:
        raise ValueError(f"tokens_to_map: {n} tokens for a {h}x{w} grid")
    return tokens.transpose(1, 2).reshape(B, C, h, w)


class HFTokenBackbone(TokenBackbone):
    """A family built on a transformers model class: subclasses name the config/model classes (attribute
    names in ``transformers``), the official config values, the checkpoint prefixes we never run and extra
    model-constructor arguments; ``build_model`` is shared."""

    hf_config_class: str
    hf_model_class: str
    hf_official_config: Mapping[str, Any]
    hf_unused: Sequence[str] = ()
    hf_model_kwargs: Mapping[str, Any] = {}

    def build_model(self, pretrained_path):
        import transformers

        config_cls = getattr(transformers, self.hf_config_class)
        model_cls = getattr(transformers, self.hf_model_class)
        config = hf_config(config_cls, self.hf_official_config, self.opts.arch_overrides)
        if pretrained_path is None:
            model = model_cls(config, **self.hf_model_kwargs)
        else:
            model = load_hf_pretrained(model_cls, config, pretrained_path, unused=self.hf_unused,
                                       **self.hf_model_kwargs)
        self.patch = int(config.patch_size)
        self.num_layers = int(config.num_hidden_layers)
        return model
