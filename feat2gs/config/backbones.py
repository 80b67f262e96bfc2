"""``backbone.*`` read as the stages need it: the component names of a (possibly concatenated) backbone and
the per-component options. Used by config validation and by the feature stage."""

from __future__ import annotations

from typing import Sequence

from ..errors import InputError
from .typed import ConfigLike, as_typed

COMPONENT_FIELDS = ("layer", "weights", "input_size", "variant", "seed", "arch_overrides")


def backbone_names(cfg: ConfigLike) -> list[str]:
    """The backbone(s) of ``backbone.name``: a name, names joined by ``+``, or a list of names."""
    raw = as_typed(cfg).backbone.name
    items = raw if isinstance(raw, (list, tuple)) else str(raw).split("+")
    names = [str(n).strip() for n in items]
    if not names or any(not n for n in names):
        raise InputError("backbone.name", f"expected a backbone name, 'a+b' or a list of names, got {raw!r}")
    if len(set(names)) != len(names):
        raise InputError("backbone.name", f"{raw!r} names a backbone twice")
    return names


def backbone_label(cfg: ConfigLike) -> str:
    """``backbone.name`` as one label: ``a+b`` for a concatenation however it was written."""
    return "+".join(backbone_names(cfg))


def check_components(cfg: ConfigLike, names: Sequence[str]) -> None:
    b = as_typed(cfg).backbone
    unknown = sorted(set(b.per_backbone or {}) - set(names))
    if unknown:
        raise InputError("backbone.per_backbone", f"{unknown} are not among the backbones {list(names)}")
    if len(names) > 1 and b.weights:
        raise InputError("backbone.weights", "with several backbones give each one its checkpoint in "
                                             "backbone.per_backbone.<name>.weights")
