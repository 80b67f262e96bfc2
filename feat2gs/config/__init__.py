"""Configuration: omegaconf YAML defaults + command-line dotlist overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..errors import InputError

CONFIG_DIR = Path(__file__).resolve().parent

#: top-level shortcuts accepted on the command line
ALIASES = {
    "scene": "scene.path",
    "backbone": "backbone.name",
    "mode": "probe.mode",
    "init": "init.name",
    "renderer": "render.backend",
}

MODES = ("G", "T", "A")
FREE_FORM = ("scene.options", "init.options", "backbone.arch_overrides", "backbone.per_backbone")


def _expand(overrides: Iterable[str]) -> list[str]:
    out = []
    for item in overrides:
        if "=" not in item:
            raise InputError(f"override {item!r}", "expected key=value")
        key, value = item.split("=", 1)
        key = key.lstrip("+")
        out.append(f"{ALIASES.get(key, key)}={value}")
    return out


def load_config(overrides: Iterable[str] = (), preset: Optional[str] = None) -> DictConfig:
    """Defaults (``default.yaml``), then a preset (``<preset>.yaml`` in this folder or a path), then
    ``key=value`` overrides. Unknown keys are errors (the config is struct)."""
    cfg = OmegaConf.load(CONFIG_DIR / "default.yaml")
    OmegaConf.set_struct(cfg, True)
    for group in FREE_FORM:  # option groups passed through to loaders / initialisers
        OmegaConf.set_struct(OmegaConf.select(cfg, group), False)
    layers = []
    if preset:
        p = Path(preset)
        p = p if p.suffix in (".yaml", ".yml") else CONFIG_DIR / f"{preset}.yaml"
        if not p.is_file():
            raise InputError("preset", f"{p} not found")
        layers.append(OmegaConf.load(p))
    try:
        layers.append(OmegaConf.from_dotlist(_expand(overrides)))
        cfg = OmegaConf.merge(cfg, *layers)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "config"
        raise InputError(str(key), f"{e.msg if hasattr(e, 'msg') else e}".splitlines()[0]) from None
    validate(cfg)
    return cfg


def validate(cfg: DictConfig) -> None:
    mode = str(cfg.probe.mode).upper()
    if mode not in MODES:
        raise InputError("probe.mode", f"unknown mode {cfg.probe.mode!r}; expected one of {', '.join(MODES)}")
    cfg.probe.mode = mode
    for key in ("train.steps", "train.warmup_steps", "eval.pose_steps", "split.n_train", "init.block"):
        v = OmegaConf.select(cfg, key)
        if not isinstance(v, int) or v < 0:
            raise InputError(key, f"expected a non-negative integer, got {v!r}")
    if cfg.split.n_train < 1:
        raise InputError("split.n_train", "need at least one train view")
    if cfg.init.block < 1:
        raise InputError("init.block", "must be >= 1")
    if cfg.eval.lpips not in ("vgg", "alex", "none"):
        raise InputError("eval.lpips", f"expected vgg, alex or none, got {cfg.eval.lpips!r}")


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)
