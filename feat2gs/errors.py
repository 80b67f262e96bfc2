"""Error types. Every error raised for bad user input names the file or field at fault."""

from __future__ import annotations


class Feat2GSError(Exception):
    """Base class of all errors raised deliberately by feat2gs."""


class InputError(Feat2GSError, ValueError):
    """Bad user input: a missing/corrupt file, a malformed field, mismatched sizes.

    ``where`` names the file or the config/data field at fault; it is prefixed to the message.
    """

    def __init__(self, where: str, message: str):
        self.where = str(where)
        self.detail = message
        super().__init__(f"{where}: {message}")


class ConfigError(InputError):
    """A bad configuration value (a key's type, range or allowed values); ``where`` is the dotted key."""


class DivergedError(Feat2GSError):
    """Training produced non-finite values (loss or parameters); ``step`` is where it was detected."""

    def __init__(self, step: int, phase: str, what: str, hint: str):
        self.step, self.phase, self.what, self.hint = step, phase, what, hint
        super().__init__(f"diverged at {phase} step {step} ({what}); {hint}")


class UnknownNameError(Feat2GSError, KeyError):
    """A registry lookup for a name that is not registered (unknown backbone, mode, initialiser...)."""

    def __init__(self, kind: str, name: str, available: list[str]):
        self.kind, self.name, self.available = kind, name, list(available)
        super().__init__(f"unknown {kind} {name!r}; available: {', '.join(sorted(available)) or '(none)'}")

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return self.args[0]


class WeightsNotFoundError(Feat2GSError, FileNotFoundError):
    """Pretrained weights of a model are not on this machine."""

    def __init__(self, model: str, how_to_get: str):
        self.model, self.how_to_get = model, how_to_get
        super().__init__(f"weights for {model} not found. {how_to_get}")


class WeightsFetchError(Feat2GSError, RuntimeError):
    """``feat2gs weights fetch`` could not get or verify a weights source (offline, hash mismatch, ...)."""


class Interrupted(KeyboardInterrupt):
    """SIGINT, raised by the CLI's own SIGINT handler. A subclass so that CPython does not turn the exit status
    into a death by SIGINT: when a plain ``KeyboardInterrupt`` crosses code run by ``exec`` of a string (e.g. a
    dataclass being created during a lazy import) the interpreter records it as unhandled, even when the CLI
    catches it later, and the process then exits by re-raising SIGINT instead of with status 130."""


class Terminated(BaseException):
    """The process received a termination signal (SIGTERM, SIGHUP); raised by the CLI's signal handler so that
    the run in progress is marked failed on the way out. A ``BaseException``, like ``KeyboardInterrupt``."""

    def __init__(self, signum: int):
        import signal

        self.signum = int(signum)
        self.signal_name = signal.Signals(self.signum).name
        super().__init__(f"terminated by {self.signal_name}")
