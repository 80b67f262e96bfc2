"""Configuration: omegaconf YAML defaults + a preset + command-line dotlist overrides, validated once.

``load_config`` merges ``default.yaml``, a preset and the overrides, then checks every key against the typed
schema (``schema.py``: types, ranges, allowed values) and the free-form option groups against the code
they go to (``options.py``: ``scene.options`` per scene format, ``init.options`` per initialiser). Every
problem raises ``ConfigError`` (an ``InputError``) naming the key, before any run folder exists. The
returned ``DictConfig`` holds the normalised values (e.g. upper-case mode letters); ``typed(cfg)`` gives
the ``schema.Config`` dataclass tree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..errors import ConfigError
from .backbones import COMPONENT_FIELDS, backbone_names, check_components
from .schema import MODES, Config
from .typed import ConfigLike, as_typed, typed  # noqa: F401 -- re-exported

CONFIG_DIR = Path(__file__).resolve().parent

#: top-level shortcuts accepted on the command line
ALIASES = {
    "scene": "scene.path",
    "backbone": "backbone.name",
    "mode": "probe.mode",
    "init": "init.name",
    "renderer": "render.backend",
}

FREE_FORM = ("scene.options", "init.options", "backbone.arch_overrides", "backbone.per_backbone")

__all__ = ["ALIASES", "CONFIG_DIR", "Config", "MODES", "load_config", "parse_modes", "preset_path", "to_yaml",
           "typed", "validate"]


def _expand(overrides: Iterable[str]) -> list[str]:
    out = []
    for item in overrides:
        if "=" not in item:
            hint = " (options such as --preset go before the key=value overrides)" if item.startswith("-") else ""
            raise ConfigError(f"override {item!r}", f"expected key=value{hint}")
        key, value = item.split("=", 1)
        key = key.lstrip("+").strip()
        if not key:
            raise ConfigError(f"override {item!r}", "expected key=value (the key is empty)")
        out.append(f"{ALIASES.get(key, key)}={value}")
    return out


def preset_path(preset: str) -> Path:
    """A preset's file: a ``.yaml``/``.yml`` path or an existing file as given, else
    ``feat2gs/config/<preset>.yaml``."""
    p = Path(preset).expanduser()
    return p if p.suffix in (".yaml", ".yml") or p.is_file() else CONFIG_DIR / f"{preset}.yaml"


def _load_preset(preset: str) -> DictConfig:
    p = preset_path(preset)
    if not p.is_file():
        available = sorted(f.stem for f in CONFIG_DIR.glob("*.yaml") if f.stem != "default")
        raise ConfigError("--preset", f"{p} not found (built-in presets: {', '.join(available)})")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(str(p), f"not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(str(p), f"cannot read the preset ({e})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(str(p), f"a preset must be a mapping of config sections, got a {type(data).__name__}")
    try:
        return OmegaConf.create(data)
    except OmegaConfBaseException as e:
        raise ConfigError(str(p), str(e).splitlines()[0]) from None


def _omegaconf_error(e: OmegaConfBaseException, source: str) -> ConfigError:
    key = getattr(e, "full_key", None) or source
    msg = getattr(e, "msg", None) or str(e)
    return ConfigError(str(key), msg.splitlines()[0])


def load_config(overrides: Iterable[str] = (), preset: Optional[str] = None) -> DictConfig:
    """Defaults (``default.yaml``), then a preset (``<preset>.yaml`` in this folder or a path), then
    ``key=value`` overrides; validated (see the module docstring). Unknown keys are errors."""
    cfg = OmegaConf.load(CONFIG_DIR / "default.yaml")
    OmegaConf.set_struct(cfg, True)
    for group in FREE_FORM:  # option groups passed through to loaders / initialisers
        OmegaConf.set_struct(OmegaConf.select(cfg, group), False)
    if preset is not None:
        if not str(preset).strip():
            raise ConfigError("--preset", "empty preset name")
        try:
            cfg = OmegaConf.merge(cfg, _load_preset(preset))
        except OmegaConfBaseException as e:
            raise _omegaconf_error(e, str(preset_path(preset))) from None
        except (TypeError, ValueError) as e:
            raise ConfigError(str(preset_path(preset)), f"does not fit the config ({e})") from None
    dotlist = _expand(overrides)
    for item in dotlist:  # one at a time, so that an error names its key
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as e:
            raise _omegaconf_error(e, item.split("=", 1)[0]) from None
        except (TypeError, ValueError) as e:  # e.g. a list merged into a mapping
            key, value = item.split("=", 1)
            raise ConfigError(key, f"cannot set it to {value!r} ({e})") from None
    validate(cfg)
    return cfg


def validate(cfg: DictConfig) -> Config:
    """Check ``cfg`` against the schema and the option groups; write the normalised values back into
    ``cfg`` and return the typed tree."""
    try:
        data = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:
        raise _omegaconf_error(e, "config") from None
    typed_cfg = Config.from_mapping(data)
    _check_cross(typed_cfg)
    from .options import check_init_options, check_scene_options

    check_scene_options(typed_cfg.scene.path, typed_cfg.scene.options, typed_cfg.scene.format)
    check_init_options(typed_cfg.init.name, typed_cfg.init.options)
    _check_backbones(typed_cfg)
    cfg.probe.mode = typed_cfg.probe.mode
    return typed_cfg


def _check_cross(c: Config) -> None:
    """Checks that involve several keys."""
    s = c.split
    if s.train is not None and len(set(s.train)) != len(s.train):
        raise ConfigError("split.train", f"repeated view indices in {s.train}")
    if s.test_indices is not None and s.train is not None and set(s.test_indices) & set(s.train):
        raise ConfigError("split.test_indices", f"views {sorted(set(s.test_indices) & set(s.train))} are also "
                                                "train views (split.train)")
    if c.scene.long_side is not None and c.scene.long_side < c.scene.multiple:
        raise ConfigError("scene.long_side", f"{c.scene.long_side} is smaller than scene.multiple "
                                             f"({c.scene.multiple})")


def _check_backbones(c: Config) -> None:
    """``backbone.name`` well formed and registered, ``backbone.per_backbone`` naming its components (layers
    and sizes are checked when the model is built)."""
    from backbones import backbone_names as registered

    names = backbone_names(c)
    known = registered()
    for n in names:
        if n not in known:
            close = [k for k in known if n and (n in k or k in n)][:6]
            raise ConfigError("backbone.name", f"unknown backbone {n!r}"
                                               + (f"; did you mean {', '.join(close)}?" if close else
                                                  "; `feat2gs backbones` lists them"))
    check_components(c, names)
    from .schema import BackboneConfig, check_value, section_fields

    spec = section_fields(BackboneConfig)
    for name, extra in (c.backbone.per_backbone or {}).items():
        where = f"backbone.per_backbone.{name}"
        if not isinstance(extra, dict):
            raise ConfigError(where, f"expected a mapping of options, got {extra!r}")
        for k, v in extra.items():
            if k not in COMPONENT_FIELDS:
                raise ConfigError(f"{where}.{k}", f"unknown option; allowed: {', '.join(COMPONENT_FIELDS)}")
            check_value(v, *spec[k], f"{where}.{k}")


def parse_modes(text: str, where: str = "--modes") -> list[str]:
    """Mode letters (e.g. ``"GTA"``, ``"g,t"``) -> ``["G", "T", "A"]``; at least one, each in ``MODES``."""
    letters = [m for m in str(text).upper() if m not in ", "]
    bad = [m for m in letters if m not in MODES]
    if bad or not letters:
        raise ConfigError(where, f"expected some of {''.join(MODES)} (e.g. GTA), got {text!r}")
    if len(set(letters)) != len(letters):
        raise ConfigError(where, f"a mode is repeated in {text!r}")
    return letters


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)
