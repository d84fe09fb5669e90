"""What the command line writes: one line per message on stderr, tables and listings through
:func:`pmrl_bench.console.write` (control characters escaped), and ``--json`` documents alone on stdout."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pmrl_bench.console import PROG, escape, say, write
from pmrl_bench.errors import PmrlBenchError

__all__ = ["PROG", "emit_json", "json_stdout", "plugin_problems", "say", "warn_plugin_failures", "write"]

# The documents that ``emit_json`` holds back until the command ends (None: no ``--json`` command is running).
_pending: list[str] | None = None


def warn_plugin_failures() -> None:
    from pmrl_bench.plugins import MANAGER

    for failure in MANAGER.failures:
        say(f"warning: {failure.message()}")


def plugin_problems() -> str:
    """The plugin problems (failures and name clashes) as lines for the end of ``--help``; empty if there are none.
    Help always works: under the strict mode the error is listed, not raised."""
    from pmrl_bench.plugins import MANAGER

    try:
        MANAGER.registry  # noqa: B018 - collecting the registry is what finds the problems
        MANAGER.reporters()
        lines = [failure.message() for failure in MANAGER.failures]
    except PmrlBenchError as exc:
        lines = [str(exc)]
    if not lines:
        return ""
    return "\nplugin problems (see 'pmrl-bench plugins'):\n" + "".join(f"  {escape(line)}\n" for line in lines)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float as None: NaN and Infinity are not JSON; strict parsers refuse them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def emit_json(document: Any) -> None:
    """Print ``document`` as the command's JSON on stdout. A value JSON has no form for (an object a plugin
    registered as metadata, say) is written as its string, so the output always parses."""
    text = json.dumps(_finite(document), indent=2, default=str)
    if _pending is None:
        print(text)
    else:
        _pending.append(text)


def _redirect_fd_1() -> int | None:
    """Point file descriptor 1 at stderr's; returns a copy of the old one, or None where there is no fd 1 or 2
    (closed, or an embedding without them): then only Python's ``sys.stdout`` is redirected."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):
        return None
    try:
        os.dup2(2, 1)
    except OSError:
        os.close(saved)
        return None
    return saved


@contextmanager
def json_stdout(enabled: bool) -> Iterator[None]:
    """While a ``--json`` command runs, everything written to stdout goes to stderr instead, from Python
    (``print`` in a plugin) or below it (file descriptor 1, which worker processes inherit); the documents given to
    :func:`emit_json` are written to the real stdout when the command ends, so stdout holds them alone."""
    global _pending
    if not enabled:
        yield
        return
    real = sys.stdout
    saved_fd = _redirect_fd_1()
    _pending, sys.stdout = [], sys.stderr
    try:
        yield
    finally:
        documents, _pending = _pending, None
        sys.stdout = real
        try:
            sys.stderr.flush()
        finally:
            if saved_fd is not None:
                os.dup2(saved_fd, 1)
                os.close(saved_fd)
        for text in documents:
            print(text, file=real)
