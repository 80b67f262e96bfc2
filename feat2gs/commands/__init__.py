"""Sub-commands of the ``feat2gs`` CLI: one module per command group, each with ``register(subparsers)``."""

from __future__ import annotations

import argparse


def add_overrides_parser(sub, name: str, help_: str) -> argparse.ArgumentParser:
    """A sub-command taking omegaconf ``key=value`` overrides and an optional ``--preset``."""
    p = sub.add_parser(name, help=help_, description=help_)
    p.add_argument("overrides", nargs="*", help="config overrides key=value (see feat2gs/config/default.yaml)")
    p.add_argument("--preset", default=None, help="a preset YAML (name in feat2gs/config or a path)")
    return p
