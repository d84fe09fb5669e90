"""Child processes that a test stops with a signal start with the default dispositions of the signals tests send.

A process keeps an ignored signal, and a blocked one, across fork and exec: under ``nohup`` (SIGHUP ignored), as a
background job of a non-interactive shell (SIGINT ignored) and on some CI runners, a child started by a test would
ignore the very signal the test sends it, and the test would wait until it timed out. pmrl-bench is right to keep
an inherited ``SIG_IGN`` (a ``nohup``'ed sweep must survive the hang-up), so a test that signals a child sets the
child's dispositions itself, by starting it with :func:`start`.

The reset runs in a small Python prelude that then ``exec``s the command (same process id, so the test signals
the command itself), not in a ``preexec_fn``: the test process has torch's threads, and code between ``fork`` and
``exec`` of a threaded process may deadlock.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

SENT_SIGNALS = (signal.SIGINT, signal.SIGHUP, signal.SIGTERM)
_PRELUDE = (
    "import os, signal, sys\n"
    f"sent = {tuple(int(s) for s in SENT_SIGNALS)}\n"
    "for sig in sent:\n"
    "    signal.signal(sig, signal.SIG_DFL)\n"
    "signal.pthread_sigmask(signal.SIG_UNBLOCK, sent)\n"
    "os.execvp(sys.argv[1], sys.argv[1:])\n"
)


def with_default_signals(command: Sequence[str]) -> list[str]:
    """``command`` run with SIGINT, SIGHUP and SIGTERM at their defaults and unblocked, whatever this process has.

    ``-S`` (no ``site``) keeps the prelude's start-up short; the command itself starts as usual."""
    return [sys.executable, "-S", "-c", _PRELUDE, *map(str, command)]


def start(command: Sequence[str], **popen: Any) -> subprocess.Popen:
    """``subprocess.Popen(command, **popen)`` with the signals tests send at their default dispositions."""
    return subprocess.Popen(with_default_signals(command), **popen)
