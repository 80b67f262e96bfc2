"""The typed view of a loaded config: what the stages read (``as_typed``)."""

from __future__ import annotations

from typing import Union

from omegaconf import DictConfig, OmegaConf

from .schema import Config

ConfigLike = Union[DictConfig, Config]


def typed(cfg: DictConfig) -> Config:
    """The typed ``Config`` of an already validated ``cfg`` (no option-group checks)."""
    return Config.from_mapping(OmegaConf.to_container(cfg, resolve=True))


def as_typed(cfg: ConfigLike) -> Config:
    """What the stages read: a ``Config`` as is, a (loaded, hence validated) ``DictConfig`` converted. The raw
    tree is kept only where it is recorded (the run folder's config.yaml)."""
    return cfg if isinstance(cfg, Config) else typed(cfg)
