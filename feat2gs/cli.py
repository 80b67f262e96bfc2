"""Command line: ``feat2gs <command> [key=value ...]``. Commands live in ``feat2gs.commands``.

``main`` is the one error boundary of the program:

* bad input (``InputError``, config errors, unknown names, missing weights) -> ``feat2gs: error: <where>:
  <what>``, exit 2;
* ``OSError`` (a missing or unwritable file or folder, a full or read-only disk) -> the path and the reason,
  exit 2;
* a run whose training diverged (too high learning rates) -> ``feat2gs: error: diverged at ... step N (...);
  lower ...``, exit 2;
* SIGINT -> ``feat2gs: interrupted``, exit 130; SIGTERM/SIGHUP -> ``feat2gs: terminated by SIGTERM``, exit
  128 + signal (143 for SIGTERM); the run in progress is marked failed with the reason on the way out;
* anything else (a bug) -> a short message, the traceback written to the run folder's ``error.log`` (or a log
  under the cache root when no run folder exists yet), exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import time
import traceback
import warnings
from typing import Optional, Sequence

from .errors import Feat2GSError, Interrupted, Terminated

#: modules of ``feat2gs.commands`` whose ``register(subparsers)`` adds their sub-commands
COMMAND_MODULES = ("probe", "backbones", "moge", "runs", "data", "sweep", "store", "report")

EXIT_INPUT = 2
EXIT_FAILED = 1
EXIT_SIGINT = 130


class _Parser(argparse.ArgumentParser):
    """argparse, with errors in the ``feat2gs: error: <where>: <what>`` form (exit 2) and the usage of the
    sub-command at fault."""

    def error(self, message: str):  # noqa: D401
        self.exit(EXIT_INPUT, f"feat2gs: error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="feat2gs", description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"feat2gs.commands.{name}").register(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Python warnings (an unwritable feature cache, a library's notice) as one ``feat2gs: warning:`` line."""
    return f"feat2gs: warning: {str(message).splitlines()[0] if str(message) else category.__name__}\n"


def _raise_terminated(signum, frame):
    raise Terminated(signum)


def _raise_interrupted(signum, frame):
    raise Interrupted()


def _error_log(e: BaseException) -> Optional[str]:
    """Write the traceback of an unexpected error to the run folder's ``error.log`` (already written by
    ``RunDir.fail``) or to a log under the cache root; returns its path."""
    run_path = getattr(e, "run_path", None)
    if run_path is not None and (run_path / "error.log").is_file():
        return str(run_path / "error.log")
    try:
        from .paths import cache_root

        folder = cache_root() / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"error-{time.strftime('%Y%m%d-%H%M%S')}.log"
        path.write_text("".join(traceback.format_exception(type(e), e, e.__traceback__)))
        return str(path)
    except OSError:
        return None


def report_error(e: BaseException) -> int:
    """Print the one-line report of ``e`` on stderr; returns the exit status (see the module docstring)."""
    from .run import describe_error

    run_path = getattr(e, "run_path", None)
    where = f" (run folder {run_path}, marked failed)" if run_path is not None else ""
    if isinstance(e, KeyboardInterrupt):
        print(f"feat2gs: interrupted{where}", file=sys.stderr)
        return EXIT_SIGINT
    if isinstance(e, Terminated):
        print(f"feat2gs: terminated by {e.signal_name}{where}", file=sys.stderr)
        return 128 + e.signum
    if isinstance(e, (Feat2GSError, OSError)):
        print(f"feat2gs: error: {describe_error(e)}", file=sys.stderr)
        if run_path is not None:
            print(f"feat2gs: run folder {run_path} marked failed", file=sys.stderr)
        return EXIT_INPUT
    log = _error_log(e)
    print(f"feat2gs: internal error: {describe_error(e)}", file=sys.stderr)
    print(f"feat2gs: traceback in {log}" if log else "feat2gs: (the traceback could not be written)",
          file=sys.stderr)
    return EXIT_FAILED


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
    except KeyboardInterrupt:
        print("feat2gs: interrupted", file=sys.stderr)
        return EXIT_SIGINT
    if extra:  # key=value overrides placed after an option: still overrides
        if hasattr(args, "overrides") and not any(x.startswith("-") for x in extra):
            args.overrides = list(args.overrides) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return run_command(args)


def run_command(args: argparse.Namespace) -> int:
    """``args.func(args)`` inside the error boundary (see the module docstring)."""
    from . import progress

    previous = {}
    handlers = {signal.SIGINT: _raise_interrupted, signal.SIGTERM: _raise_terminated, signal.SIGHUP: _raise_terminated}
    for sig, handler in handlers.items():
        try:
            if signal.getsignal(sig) is signal.SIG_IGN:  # e.g. SIGHUP under nohup: stays ignored
                continue
            previous[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):  # not the main thread
            pass
    was_enabled = progress.enabled()
    progress.enable(True)
    previous_format = warnings.formatwarning
    warnings.formatwarning = _one_line_warning
    try:
        return args.func(args)
    except BaseException as e:  # noqa: BLE001 -- the one error boundary
        if isinstance(e, SystemExit):
            raise
        return report_error(e)
    finally:
        warnings.formatwarning = previous_format
        progress.enable(was_enabled)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
