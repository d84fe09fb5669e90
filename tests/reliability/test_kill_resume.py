"""A sweep killed at any point loses nothing: no partial result file, and the next ``run`` completes it.

Each test starts a real CLI process (``killpoints.py`` wraps one function to kill itself at a known point),
then resumes in-process with the same command, and checks every result is present, valid and in place.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pmrl_bench.cli import main
from pmrl_bench.results import ResultStore

from child_signals import start
from reliability_helpers import assert_complete, run_args

KILLPOINTS = Path(__file__).with_name("killpoints.py")
SEEDS, STEPS = 2, 10  # one objective x 2 seeds: 2 runs of 10 steps each
# One thread per process: these tests start processes on shared CPUs, where torch's thread pool only contends.
CHILD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _start(point: str, n: int, args: list[str], tmp_path: Path, **popen) -> subprocess.Popen:
    """The CLI under ``killpoints.py``, with default signal dispositions (the tests signal it; see child_signals)."""
    env = {**os.environ, **CHILD_ENV, "PMRL_TEST_PAUSED": str(tmp_path / "paused")}
    return start([sys.executable, str(KILLPOINTS), point, str(n), *args],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **popen)


def _resume_and_check(args: list[str], results: Path, boards: Path, capsys, expect_rerun: int) -> None:
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"{SEEDS} runs: {expect_rerun} ok, 0 diverged, 0 failed, {SEEDS - expect_rerun} already done" in out, out
    assert_complete(results, SEEDS)
    assert main(["leaderboard", str(results), "--out", str(boards), "--check"]) == 0


@pytest.mark.parametrize(
    ("point", "n", "valid_after_kill"),
    [
        ("train", 15, 1),            # step 5 of the second run
        ("result-midwrite", 1, 0),   # half of the first result in its temporary file
        ("result-renaming", 2, 1),   # second result complete in its temporary, not yet renamed
        ("result-written", 1, 1),    # right after the first result is in place
        ("board-midwrite", 1, 2),    # a torn leaderboard page on disk
        ("board-partial", 1, 2),     # some pages new, some missing
    ],
)
@pytest.mark.slow
def test_sigkill_then_next_run_completes(point, n, valid_after_kill, tmp_path, capsys):
    results, boards = tmp_path / "results", tmp_path / "boards"
    args = run_args(results, boards, seeds=SEEDS, steps=STEPS)
    proc = _start(point, n, args, tmp_path)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == -signal.SIGKILL, err

    found, problems = ResultStore(results).scan()  # what the kill left: only complete, valid results
    assert problems == [] and len(found) == valid_after_kill, (problems, found)
    if point.startswith("result-") and point != "result-written":
        assert list(results.rglob("*.tmp")), "the kill should have left a temporary file behind"

    _resume_and_check(args, results, boards, capsys, expect_rerun=SEEDS - valid_after_kill)


@pytest.mark.parametrize(("sig", "status", "name"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C")])
@pytest.mark.slow
def test_sigterm_and_ctrl_c_stop_cleanly_and_say_what_finished(sig, status, name, tmp_path, capsys):
    results, boards = tmp_path / "results", tmp_path / "boards"
    args = run_args(results, boards, seeds=SEEDS, steps=STEPS)
    proc = _start("pause", 15, args, tmp_path)  # paused at step 5 of the second run
    deadline = time.monotonic() + 240
    while not (tmp_path / "paused").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == status, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"interrupted by {name} during synthetic/infonce/" in lines[0]
    assert f"finished 1 of {SEEDS} runs (1 ok, 0 diverged, 0 failed)" in lines[0] and "1 remain" in lines[0]
    assert_complete(results, 1)  # the finished run is saved, the interrupted one left nothing
    _resume_and_check(args, results, boards, capsys, expect_rerun=1)


@pytest.mark.slow
def test_sigkill_of_the_console_script_at_a_random_moment(tmp_path, capsys):
    """The installed ``pmrl-bench`` script, killed by timing (wherever it is), then resumed."""
    results, boards = tmp_path / "results", tmp_path / "boards"
    args = run_args(results, boards, seeds=SEEDS, steps=STEPS)
    script = Path(sys.executable).with_name("pmrl-bench")
    proc = subprocess.Popen([str(script), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **CHILD_ENV})
    deadline = time.monotonic() + 240
    while not any(results.rglob("*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.kill()
    proc.communicate(timeout=60)
    found, problems = ResultStore(results).scan()
    assert problems == []
    _resume_and_check(args, results, boards, capsys, expect_rerun=SEEDS - len(found))
