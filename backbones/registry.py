"""One registry for every backbone. ``random-<name>`` is the same network with fixed-seed random
weights (the chance-level control) and exists for every registered network."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional, Union

from feat2gs.errors import UnknownNameError
from feat2gs.registry import Registry

from .base import Backbone
from .weights import WeightsSpec

RANDOM_PREFIX = "random-"


@dataclass(frozen=True)
class BackboneInfo:
    family: str
    channels: int
    patch: int  # 1 for per-pixel features
    default_layer: Union[int, str]
    weights: Optional[WeightsSpec] = None  # None: no pretrained weights (IUVRGB)
    description: str = ""


@dataclass
class BackboneOptions:
    """Options every backbone factory receives (from the ``backbone.*`` config group)."""

    name: str = ""
    layer: Any = -1  # int, or a list of ints for multi-layer features
    weights: Optional[str] = None  # a local checkpoint path; None = the HF cache
    random_init: bool = False  # fixed-seed random weights (``random-<name>``)
    seed: int = 0  # seed of the random weights
    device: str = "cpu"
    input_size: Optional[int] = None  # long side of the model input; None = the backbone's default
    variant: Optional[str] = None  # family-specific (model size, encoder/decoder, ...)
    arch_overrides: dict = field(default_factory=dict)  # architecture changes (tiny test configs)


BACKBONES: Registry[Callable[[BackboneOptions, BackboneInfo], Backbone]] = Registry("backbone")


def register_backbone(name: str, info: BackboneInfo):
    """Decorator registering ``factory(opts: BackboneOptions, info: BackboneInfo) -> Backbone`` (usually the
    wrapper class itself) under ``name``. A class may be registered under several names (model sizes)."""
    return BACKBONES.register(name, info=info)


def backbone_info(name: str) -> BackboneInfo:
    base = name[len(RANDOM_PREFIX):] if name.startswith(RANDOM_PREFIX) else name
    info = _entry(base, name).meta["info"]
    return replace(info, weights=None) if name.startswith(RANDOM_PREFIX) else info


def _entry(base: str, requested: str):
    try:
        return BACKBONES.entry(base)
    except UnknownNameError:
        raise UnknownNameError("backbone", requested, backbone_names()) from None


def backbone_names(include_random: bool = True) -> list[str]:
    names = BACKBONES.names()
    if include_random:
        names = names + [RANDOM_PREFIX + n for n in names if BACKBONES.entry(n).meta["info"].weights is not None]
    return names


def build_backbone(name: str, opts: Optional[BackboneOptions] = None, **kwargs: Any) -> Backbone:
    """Build a registered backbone; ``random-<name>`` builds ``name`` with ``random_init=True``."""
    opts = replace(opts or BackboneOptions(), **kwargs)
    base = name
    if name.startswith(RANDOM_PREFIX):
        base = name[len(RANDOM_PREFIX):]
        entry = _entry(base, name)
        if entry.meta["info"].weights is None:
            raise UnknownNameError("backbone", name, backbone_names())
        opts = replace(opts, random_init=True)
    entry = _entry(base, name)
    opts = replace(opts, name=name)
    return entry.factory(opts, entry.meta["info"])
