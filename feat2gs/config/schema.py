"""Typed configuration: one frozen dataclass per section of ``default.yaml``, checked once at load.

``default.yaml`` holds the defaults and their documentation; the dataclasses below hold each key's type and
allowed values. Adding a key is one line in each::

    long_side: Optional[int] = key(ge=8)          # type annotation + range / choices metadata

``key(...)`` accepts ``ge``/``gt``/``le``/``lt`` (numeric bounds, also applied to every element of a list),
``choices`` (allowed values), ``length`` (exact list length), ``upper`` (strings upper-cased before the
check), ``pattern`` (a regular expression a string must match; ``pattern_text`` describes it) and
``nonempty`` (strings and lists).
Supported types: ``int``, ``float`` (finite; ints are accepted), ``bool``, ``str`` (numbers are accepted
and turned into strings), ``dict`` (free-form option groups, checked by ``feat2gs.config.options``),
``list[...]``, ``Optional[...]`` and ``Union[...]`` of those, and nested section dataclasses.

:func:`check_section` validates a plain mapping against a section class (unknown and missing keys, types,
ranges) and returns the typed instance; every problem raises :class:`~feat2gs.errors.ConfigError` naming the
dotted key. ``Config.from_mapping`` does it for the whole tree.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, fields
from pathlib import PurePath
from typing import Any, Optional, Union

from probes.readout import MODE_HEADS

from ..errors import ConfigError

#: probing modes, in their canonical order (defined once, with the heads each one reads out, in probes.readout)
MODES = tuple(MODE_HEADS)
SPLIT_TEST_RULES = ("all", "even", "farthest")
LPIPS_NETS = ("vgg", "alex", "none")
RENDER_BACKENDS = ("auto", "gsplat", "cpu", "reference")
DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?|mps"
FRAME_METHODS = ("auto", "sphere", "bbox", "depth", "cameras", "none")  # feat2gs.data.frame
EVAL_MASK_METHODS = ("auto", "gt-depth", "mvs-consistency", "all")  # feat2gs.evalmask


def key(**meta: Any) -> Any:
    """A config key: its checks (see the module docstring) as dataclass field metadata; no default (the
    defaults live in ``default.yaml``)."""
    return dataclasses.field(metadata=meta)


# ---------------------------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class SceneConfig:
    path: str = key(nonempty=True)
    format: Optional[str] = key(nonempty=True)  # a registered scene format (feat2gs.data.formats)
    long_side: Optional[int] = key(ge=8)
    multiple: int = key(ge=1, le=256)
    options: dict = key()
    normalize: str = key(choices=FRAME_METHODS)
    background: str = key(choices=("black", "keep"))
    mask_erosion: int = key(ge=0, le=64)


@dataclass(frozen=True)
class SplitConfig:
    name: str = key(nonempty=True)
    n_train: Optional[int] = key(ge=1)
    test: str = key(choices=SPLIT_TEST_RULES)
    n_test: Optional[int] = key(ge=1)
    train: Optional[list[int]] = key(ge=0, nonempty=True)
    test_indices: Optional[list[int]] = key(ge=0, nonempty=True)


@dataclass(frozen=True)
class InitConfig:
    name: str = key(nonempty=True)
    block: int = key(ge=1, le=64)
    options: dict = key()


@dataclass(frozen=True)
class BackboneConfig:
    name: Union[str, list[str]] = key(nonempty=True)
    layer: Union[int, list[int]] = key(ge=-1000, le=1000, nonempty=True)
    weights: Optional[str] = key(nonempty=True)
    input_size: Optional[int] = key(ge=14, le=4096)
    variant: Optional[str] = key()
    seed: int = key(ge=0)
    arch_overrides: dict = key()
    per_backbone: dict = key()
    cache: bool = key()


@dataclass(frozen=True)
class CacheConfig:
    dir: Optional[str] = key(nonempty=True)
    scenes: bool = key()
    dir_scenes: Optional[str] = key(nonempty=True)


@dataclass(frozen=True)
class ProbeConfig:
    mode: str = key(choices=MODES, upper=True)
    pca_dim: int = key(ge=1, le=4096)
    hidden: Union[int, str] = key(ge=1, le=8192, choices=("input",))  # int, or "input" (D x D heads)
    sh_degree: int = key(ge=0, le=3)
    init_opacity: float = key(gt=0.0, lt=1.0)


@dataclass(frozen=True)
class LrConfig:
    xyz: float = key(ge=0.0)
    xyz_final: float = key(ge=0.0)
    xyz_decay_steps: int = key(ge=0)
    f_dc: float = key(ge=0.0)
    f_rest: float = key(ge=0.0)
    opacity: float = key(ge=0.0)
    scaling: float = key(ge=0.0)
    rotation: float = key(ge=0.0)


@dataclass(frozen=True)
class PoseConfig:
    refine: bool = key()
    lr: float = key(gt=0.0)
    lr_final: float = key(gt=0.0)
    decay_steps: int = key(ge=0)


@dataclass(frozen=True)
class TrainConfig:
    warmup_steps: int = key(ge=0)
    warmup_lr: list[float] = key(gt=0.0, length=2)
    steps: int = key(ge=0)
    ssim_weight: float = key(ge=0.0, le=1.0)
    scale_reg: float = key(ge=0.0)
    lr: LrConfig = key()
    pose: PoseConfig = key()
    log_every: int = key(ge=1)


@dataclass(frozen=True)
class EvalConfig:
    mask: str = key(choices=EVAL_MASK_METHODS)
    mask_rel_tol: float = key(gt=0.0, le=1.0)
    mask_mvs_rel_tol: float = key(gt=0.0, le=1.0)
    mask_mvs_options: dict = key()
    pose_steps: int = key(ge=0)
    pose_lr_t: float = key(ge=0.0)
    pose_lr_r: float = key(ge=0.0)
    lpips: str = key(choices=LPIPS_NETS)
    save_renders: bool = key()


@dataclass(frozen=True)
class RenderConfig:
    backend: str = key(choices=RENDER_BACKENDS)


@dataclass(frozen=True)
class OutputConfig:
    root: str = key(nonempty=True)
    name: Optional[str] = key(nonempty=True, pattern=r"[^/\\]+", pattern_text="a folder name (no slashes)")


@dataclass(frozen=True)
class Config:
    seed: int = key(ge=0, le=2 ** 63 - 1)
    device: str = key(pattern=DEVICE_PATTERN, pattern_text="auto, cpu, cuda, cuda:N or mps")
    scene: SceneConfig = key()
    split: SplitConfig = key()
    init: InitConfig = key()
    backbone: BackboneConfig = key()
    cache: CacheConfig = key()
    probe: ProbeConfig = key()
    train: TrainConfig = key()
    eval: EvalConfig = key()
    render: RenderConfig = key()
    output: OutputConfig = key()

    @classmethod
    def from_mapping(cls, data: Any) -> "Config":
        return check_section(cls, data, "")


# ---------------------------------------------------------------------------------------------- checking
def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_PLURAL = {int: "integers", float: "numbers", bool: "true/false values", str: "strings"}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Union:
        args = typing.get_args(tp)
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if origin is list:
        (inner,) = typing.get_args(tp) or (Any,)
        return f"a list of {_PLURAL.get(inner, 'values')}" if inner is not Any else "a list"
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string", dict: "a mapping"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def _check_range(value: Any, meta: dict, where: str) -> None:
    for op, test, word in (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
                           ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<")):
        if op in meta and not test(value, meta[op]):
            raise ConfigError(where, f"must be {word} {meta[op]}, got {_describe(value)}")


def check_value(value: Any, tp: Any, meta: dict, where: str) -> Any:
    """``value`` checked against type ``tp`` and the checks in ``meta``; returns it normalised (ints as
    floats for float keys, numbers as strings for string keys, mode letters upper-cased)."""
    origin = typing.get_origin(tp)
    if origin is Union:
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(where, f"expected {_type_name(tp)}, got nothing (null)")
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return check_value(value, arg, meta, where)
            except ConfigError as e:
                errors.append(e)
        # a value of the right kind but out of range: report that, not the type mismatch
        kinds = [e for e in errors if not e.detail.startswith("expected ")]
        raise kinds[0] if kinds else ConfigError(where, f"expected {_type_name(tp)}, got {_describe(value)}")
    if tp is Any:
        return value
    if value is None:
        raise ConfigError(where, f"expected {_type_name(tp)}, got nothing (null)")
    if tp is PurePath or (isinstance(tp, type) and issubclass(tp, PurePath)):
        tp = str  # paths are given as strings
    if tp is tuple or origin is tuple:
        tp, origin = list, list
    if dataclasses.is_dataclass(tp):
        return check_section(tp, value, where)
    if origin is list:
        (inner,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(where, f"expected {_type_name(tp)}, got {_describe(value)}")
        if "length" in meta and len(value) != meta["length"]:
            raise ConfigError(where, f"expected {meta['length']} values, got {len(value)}")
        if meta.get("nonempty") and not value:
            raise ConfigError(where, "must not be empty")
        return [check_value(v, inner, {k: m for k, m in meta.items() if k not in ("length", "nonempty")},
                            f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(where, f"expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(where, f"expected an integer, got {_describe(value)}")
        _check_range(value, meta, where)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(where, f"expected a number, got {_describe(value)}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(where, f"must be a finite number, got {value}")
        _check_range(value, meta, where)
        return value
    if tp is str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ConfigError(where, f"expected a string, got {_describe(value)}")
        value = str(value)
        if meta.get("upper"):
            value = value.upper()
        if meta.get("nonempty") and not value.strip():
            raise ConfigError(where, "must not be empty")
        if "choices" in meta and value not in meta["choices"]:
            raise ConfigError(where, f"expected one of {', '.join(map(str, meta['choices']))}, got {_describe(value)}")
        if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
            raise ConfigError(where, f"expected {meta.get('pattern_text', meta['pattern'])}, got {_describe(value)}")
        return value
    if tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(where, f"expected a mapping (key: value, ...), got {_describe(value)}")
        return dict(value)
    raise TypeError(f"config schema: unsupported type {tp!r} at {where}")


def section_fields(cls: type) -> dict[str, tuple[Any, dict]]:
    """name -> (type, checks) of a section dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: (hints[f.name], dict(f.metadata)) for f in fields(cls)}


def check_section(cls: type, data: Any, prefix: str) -> Any:
    """A typed ``cls`` instance from the mapping ``data`` (every key checked; see the module docstring)."""
    where = prefix or "config"
    if not isinstance(data, dict):
        raise ConfigError(where, f"expected a mapping (key: value, ...), got {_describe(data)}")
    spec = section_fields(cls)
    unknown = sorted(set(data) - set(spec))
    if unknown:
        raise ConfigError(f"{prefix}.{unknown[0]}" if prefix else str(unknown[0]),
                          f"unknown key; known keys{' of ' + prefix if prefix else ''}: {', '.join(spec)}")
    out = {}
    for name, (tp, meta) in spec.items():
        dotted = f"{prefix}.{name}" if prefix else name
        if name not in data:
            raise ConfigError(dotted, "missing")
        out[name] = check_value(data[name], tp, meta, dotted)
    return cls(**out)


def as_dict(section: Any) -> dict[str, Any]:
    """A typed section back as plain nested dicts (what the YAML tree holds)."""
    return dataclasses.asdict(section)


def iter_keys(cls: type = Config, prefix: str = ""):
    """(dotted key, type, checks) of every leaf key of the schema (nested sections expanded)."""
    for name, (tp, meta) in section_fields(cls).items():
        dotted = f"{prefix}.{name}" if prefix else name
        if dataclasses.is_dataclass(tp):
            yield from iter_keys(tp, dotted)
        else:
            yield dotted, tp, meta
