"""Command line: ``feat2gs <command> [key=value ...]``. Commands live in ``feat2gs.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from .errors import Feat2GSError

#: modules of ``feat2gs.commands`` whose ``register(subparsers)`` adds their sub-commands
COMMAND_MODULES = ("probe", "backbones", "moge", "sweep", "store", "report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="feat2gs", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"feat2gs.commands.{name}").register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Feat2GSError as e:
        print(f"feat2gs: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
