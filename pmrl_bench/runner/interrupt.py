"""Turn SIGTERM and SIGHUP into the same clean stop as Ctrl-C while a sweep runs or leaderboards are written.

By default SIGTERM (what ``kill``, systemd and batch schedulers send) ends Python at once: no message and
no ``finally`` blocks. Raising :class:`~pmrl_bench.errors.Interrupted` instead unwinds the stack like
Ctrl-C does, so a half-written temporary file is removed and the command can say what it finished.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from pmrl_bench.errors import Interrupted, PmrlBenchError

STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None
)


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum, f"stopped by {signal.Signals(signum).name}")


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise ``Interrupted``; the previous handlers come back after it.

    Signals can only be handled in the main thread; elsewhere (e.g. a sweep run from a worker thread) this
    does nothing. A signal that was ignored (``nohup`` ignores SIGHUP) stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for sig in STOP_SIGNALS:
        current = signal.getsignal(sig)
        if current is signal.SIG_IGN:
            continue
        previous[sig] = current
        signal.signal(sig, _raise_interrupted)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


TERMINAL_SIGNALS: tuple[signal.Signals, ...] = tuple(
    s for s in (signal.SIGINT, getattr(signal, "SIGHUP", None)) if s is not None
)


@contextmanager
def terminal_signals_ignored() -> Iterator[None]:
    """Processes started within the block begin with SIGINT and SIGHUP ignored (a child keeps an inherited
    ``SIG_IGN``): the terminal sends Ctrl-C and a hang-up to its whole foreground process group, and only the parent
    may act on them, by stopping its workers in order and printing its one line."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in TERMINAL_SIGNALS}
    try:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


@contextmanager
def quiet_worker() -> Iterator[None]:
    """The body of a worker process that its parent stops with SIGTERM and that reports nothing itself.

    SIGTERM unwinds the worker like Ctrl-C and it exits with status 1, without a traceback; an error pmrl-bench
    raises on purpose (the parent meets the same one and says it) exits with status 2. Either way Python's exit
    handlers run, and progress bars take a thread lock instead of a multiprocessing semaphore, so nothing is left
    for the resource tracker to warn about after the parent's last line.
    """
    import sys

    from tqdm.auto import tqdm

    tqdm.set_lock(threading.RLock())
    try:
        with stop_signals_interrupt():
            yield
    except KeyboardInterrupt:
        sys.exit(1)
    except PmrlBenchError:
        sys.exit(2)


def signal_name(signum: int) -> str:
    """How a message names the signal: ``Ctrl-C`` for SIGINT, else ``SIGTERM``, ``SIGHUP``, ..."""
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


@contextmanager
def interruptible(describe: Callable[[str], str]) -> Iterator[None]:
    """Within the block, Ctrl-C, SIGTERM and SIGHUP stop with :class:`Interrupted` carrying ``describe(name)``,
    where ``name`` is :func:`signal_name` of the signal: one line that says what the stop interrupted."""
    with stop_signals_interrupt():
        try:
            yield
        except KeyboardInterrupt as exc:
            signum = getattr(exc, "signum", signal.SIGINT)
            raise Interrupted(signum, describe(signal_name(signum))) from None
