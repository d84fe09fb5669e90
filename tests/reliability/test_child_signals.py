"""Tests that signal a child start it through ``child_signals.start``, which must undo what the test process
inherited: ignored SIGINT (a background job of a non-interactive shell), ignored SIGHUP (``nohup``), blocked
signals (some CI runners). Here the test process itself is put in those states for the duration of each test."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from child_signals import SENT_SIGNALS, start

SLEEPER = [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"]
INHERITED = {  # what the test process is given, as the shells and runners above give it
    "SIGINT ignored": ({signal.SIGINT}, set()),
    "SIGHUP ignored": ({signal.SIGHUP}, set()),
    "SIGINT and SIGHUP ignored": ({signal.SIGINT, signal.SIGHUP}, set()),
    "all three ignored": (set(SENT_SIGNALS), set()),
    "SIGTERM and SIGHUP blocked": (set(), {signal.SIGTERM, signal.SIGHUP}),
    "ignored and blocked": ({signal.SIGINT}, {signal.SIGINT, signal.SIGHUP}),
}
pytestmark = pytest.mark.slow  # every test starts processes


@contextmanager
def inherited(ignored: set[signal.Signals], blocked: set[signal.Signals]) -> Iterator[None]:
    """This (main) thread ignores ``ignored`` and blocks ``blocked`` inside the block; both come back after it."""
    previous = {sig: signal.getsignal(sig) for sig in ignored}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        for sig in ignored:
            signal.signal(sig, signal.SIG_IGN)
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _masks(pid: int, program: str) -> tuple[int, int]:
    """(ignored, blocked) signal masks of ``pid`` once it runs ``program`` (after the prelude's exec)."""
    status = Path(f"/proc/{pid}/status")
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}/exe").resolve().name != program:
        assert time.monotonic() < deadline, "the command was never exec'd"
        time.sleep(0.01)
    fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
    return int(fields["SigIgn"], 16), int(fields["SigBlk"], 16)


def _bits(signals: set[signal.Signals]) -> int:
    return sum(1 << (sig - 1) for sig in signals)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads dispositions from /proc")
@pytest.mark.parametrize("case", list(INHERITED))
def test_the_child_starts_with_default_dispositions_whatever_the_test_inherited(case):
    ignored, blocked = INHERITED[case]
    sleep = Path(subprocess.run(["which", "sleep"], capture_output=True, text=True, check=True).stdout.strip())
    program = sleep.resolve().name
    with inherited(ignored, blocked):
        plain = subprocess.Popen([str(sleep), "30"])
        child = start([str(sleep), "30"])
    try:
        plain_ignored, plain_blocked = _masks(plain.pid, program)
        child_ignored, child_blocked = _masks(child.pid, program)
    finally:
        for proc in (plain, child):
            proc.kill()
            proc.wait()
    # without the helper the child inherits exactly what the test set up: what would make a signal test hang
    assert plain_ignored & _bits(ignored) == _bits(ignored) and plain_blocked & _bits(blocked) == _bits(blocked)
    assert child_ignored & _bits(set(SENT_SIGNALS)) == 0 and child_blocked & _bits(set(SENT_SIGNALS)) == 0


@pytest.mark.parametrize("sig", SENT_SIGNALS, ids=lambda s: s.name)
def test_a_signal_the_test_sends_reaches_a_child_that_inherited_it_ignored(sig):
    with inherited(set(SENT_SIGNALS), {signal.SIGINT}):
        plain = subprocess.Popen(SLEEPER, stdout=subprocess.PIPE, text=True)
        child = start(SLEEPER, stdout=subprocess.PIPE, text=True)
    try:
        for proc in (plain, child):
            assert proc.stdout.readline() == "ready\n"
            proc.send_signal(sig)
        # Python ends on an unhandled KeyboardInterrupt by re-raising SIGINT, so each signal is the cause of death
        assert child.wait(timeout=30) == -sig
        with pytest.raises(subprocess.TimeoutExpired):  # the one that kept SIG_IGN is still asleep
            plain.wait(timeout=0.5)
    finally:
        for proc in (plain, child):
            proc.kill()
            proc.wait()
            proc.stdout.close()
