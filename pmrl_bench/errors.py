"""Exceptions that the CLI maps onto the contract's exit statuses."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from pmrl_bench.console import shorten


class PmrlBenchError(Exception):
    """Base class of every error pmrl-bench raises on purpose."""


class UsageError(PmrlBenchError):
    """Bad usage or bad input: the CLI prints the message as one line and exits with status 2."""


class UnknownNameError(UsageError, LookupError):
    """A component, modality or key that does not exist; the message lists what does."""

    def __init__(self, what: str, name: str, available: Iterable[str]) -> None:
        available = sorted(available)
        close = difflib.get_close_matches(name, available, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listing = ", ".join(available) if available else "none"
        super().__init__(f"unknown {what} {shorten(repr(name))}{hint}; available: {listing}")
        self.name = name
        self.available = available


class PluginError(UsageError):
    """A plugin could not be loaded or registered something invalid."""


class DataError(UsageError):
    """A task's data is missing, malformed or inconsistent."""


class RunFailed(PmrlBenchError):
    """At least one run of a sweep failed or diverged (exit status 1)."""


class SaveFailed(PmrlBenchError):
    """The disk or file system refused what a run produced (a result, an init stage): full, read-only, removed.

    The environment's fault, not the objective's: it stops the command with one line (exit status 1) and is never
    recorded as a ``failed`` run. Whatever trains a run lets it through its ``except Exception``.
    """


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, SIGTERM or SIGHUP stopped a command. The CLI prints ``message`` and exits with 128 + ``signum``.

    A ``KeyboardInterrupt`` (not an ``Exception``) so that no ``except Exception`` in a run or plugin swallows it.
    """

    def __init__(self, signum: int, message: str = "") -> None:
        super().__init__(message)
        self.signum = signum
        self.message = message

    @property
    def exit_status(self) -> int:
        return 128 + self.signum
