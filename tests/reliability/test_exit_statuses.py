"""Honest exit statuses and clean stops.

* ``tune`` whose every trial failed or diverged exits 1, says so, and writes no tuned-parameter file that ``--tuned``
  would use; a study with one good trial is tuned as before.
* ``tune --jobs N`` stopped by SIGTERM, SIGHUP or the terminal's Ctrl-C prints its one line and nothing after it.
* A page temporary that a writer killed with ``kill -9`` left behind is removed by the next rebuild of its directory.
"""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from reliability_helpers import TINY

from pmrl_bench import hookimpl
from pmrl_bench.cli import main
from pmrl_bench.components import ObjectiveOutput

TUNE = ["tune", *TINY, "--steps", "3", "--dim", "8", "--trials", "3"]


class _Hopeless(torch.nn.Module):
    """Fails (``how="raise"``) or diverges (``how="nan"``) at its first step, whatever the trial draws."""

    def __init__(self, how: str = "raise") -> None:
        super().__init__()
        self.how = how

    def forward(self, embeddings):
        first, *others = embeddings.values()
        loss = sum(1 - (first * z).sum(-1).mean() for z in others)
        if torch.is_grad_enabled():
            if self.how == "raise":
                raise RuntimeError("this objective never trains")
            loss = loss * math.nan
        return ObjectiveOutput(loss=loss, terms={})


class HopelessPlugin:
    @hookimpl
    def register_objectives(self, register):
        register("always-fails", lambda: _Hopeless("raise"))
        register("always-diverges", lambda: _Hopeless("nan"))


def _tuned_files(root: Path) -> dict[str, Path]:
    return {p.parent.name: p for p in (root / "_tuning").rglob("*.json")}


@pytest.mark.parametrize(("objective", "status"), [("always-fails", "failed"), ("always-diverges", "diverged")])
def test_a_tune_where_every_trial_failed_exits_1_and_writes_no_file(objective, status, tmp_path, capsys,
                                                                     pmrl_register_plugin):
    pmrl_register_plugin(HopelessPlugin())
    root = tmp_path / "results"
    code = main([*TUNE, "--objectives", objective, "--results", str(root)])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    assert f"all 3 trials failed or diverged (trial 0: {status}" in captured.err, captured.err
    assert "every trial failed or diverged in 1 of 1 studies" in captured.err
    assert "Traceback" not in captured.err and "no tuned parameters written" in captured.out
    assert _tuned_files(root) == {}
    # and --tuned finds nothing to train with: one line, exit 2
    assert main(["run", "--objectives", objective, *TINY, "--steps", "3", "--dim", "8", "--seeds", "1", "--tuned",
                 "--results", str(root), "--leaderboard", str(tmp_path / "boards")]) == 2
    assert "no tuned parameters for objective" in capsys.readouterr().err


def test_a_tune_where_one_study_failed_writes_the_others_and_exits_1(tmp_path, capsys, pmrl_register_plugin):
    pmrl_register_plugin(HopelessPlugin())
    root = tmp_path / "results"
    code = main([*TUNE, "--objectives", "infonce,always-fails", "--results", str(root)])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    assert "1 of 2 studies; tuned parameters in" in captured.out
    assert set(_tuned_files(root)) == {"infonce"}


def test_a_tune_with_good_trials_exits_0(tmp_path, capsys):
    root = tmp_path / "results"
    assert main([*TUNE, "--objectives", "infonce", "--results", str(root)]) == 0
    assert "1 studies; tuned parameters in" in capsys.readouterr().out
    assert set(_tuned_files(root)) == {"infonce"}


# -- tune --jobs stopped by a signal ---------------------------------------------------------------------------------

def _default_signals() -> None:
    """The child's dispositions are the default whatever this test process inherited (nohup, CI runners)."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def _running_trials(database: Path) -> int:
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("select count(*) from trials where state = 'RUNNING'").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "to_group"), [(signal.SIGTERM, False), (signal.SIGINT, True),
                                                (signal.SIGHUP, False)], ids=["SIGTERM", "Ctrl-C", "SIGHUP"])
def test_tune_jobs_stopped_by_a_signal_says_one_line_and_nothing_after(sig, to_group, tmp_path):
    root = tmp_path / "results"
    command = [sys.executable, "-m", "pmrl_bench", "tune", "--objectives", "infonce,pmrl", "--trials", "4",
               "--jobs", "2", *TINY[:-1], "--steps", "5000", "--dim", "8", "--results", str(root)]
    env = {**os.environ, "PMRL_BENCH_LOAD_PLUGINS": "", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=_default_signals)
    deadline = time.monotonic() + 180
    while _running_trials(root / "_tuning" / "studies.db") < 2 and process.poll() is None:
        assert time.monotonic() < deadline, "the two processes never both ran a trial"
        time.sleep(0.5)
    time.sleep(1.0)  # into the trials' training
    if to_group:  # the terminal sends Ctrl-C to the whole foreground process group, workers included
        os.killpg(process.pid, sig)
    else:
        process.send_signal(sig)
    out, err = process.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert process.returncode == 128 + sig, err
    assert len(lines) == 1 and lines[0].startswith("pmrl-bench: tuning interrupted by"), err
    assert "leaked" not in err and "Traceback" not in err and "Process" not in err


# -- page temporaries --------------------------------------------------------------------------------------------

LEFT_BY_KILL_9 = [".README.md.abc_1234.tmp", ".synthetic.md.x9y8z7w6.tmp", ".synthetic.scratch.curves.png.a_b_c_d_.tmp"]
NOT_OURS = ["notes.tmp", ".notes.tmp", ".README.md.tmp", "README.md.abc_1234.tmp"]


def test_the_next_rebuild_removes_page_temporaries_a_killed_writer_left(tmp_path, capsys):
    results, boards = tmp_path / "results", tmp_path / "boards"
    results.mkdir()
    boards.mkdir()
    for name in LEFT_BY_KILL_9 + NOT_OURS:
        (boards / name).write_text("half a page")
    (boards / ".README.md.dir_1234.tmp").mkdir()  # a directory is never a temporary of ours
    assert main(["leaderboard", str(results), "--out", str(boards)]) == 0
    left = {p.name for p in boards.iterdir()}
    assert not left & set(LEFT_BY_KILL_9), left
    assert set(NOT_OURS) | {".README.md.dir_1234.tmp", "README.md"} <= left


_SLOW_WRITER = """
import os, sys, time
from pathlib import Path
import pmrl_bench.leaderboard.build as build
real_fsync = os.fsync
boards = os.path.realpath(sys.argv[2])
def fsync_then_hang(fd):
    real_fsync(fd)
    written = os.path.realpath(f"/proc/self/fd/{fd}")
    if os.path.dirname(written) == boards and written.endswith(".tmp"):  # a page's temporary, not a cache's
        Path(sys.argv[3]).touch()  # it is written: the parent may kill us now
        time.sleep(600)
build.os.fsync = fsync_then_hang
from pmrl_bench.leaderboard.rebuild import rebuild_leaderboards
rebuild_leaderboards(Path(sys.argv[1]), Path(sys.argv[2]))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to tell a page's file descriptor")
def test_a_writer_killed_mid_page_leaves_a_temporary_the_next_rebuild_removes(tmp_path, capsys):
    results, boards, ready = tmp_path / "results", tmp_path / "boards", tmp_path / "ready"
    results.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(results), str(boards), str(ready)],
                              env={**os.environ, "PMRL_BENCH_LOAD_PLUGINS": ""}, preexec_fn=_default_signals)
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert writer.poll() is None and time.monotonic() < deadline, "the writer never wrote a temporary"
        time.sleep(0.2)
    writer.kill()
    writer.wait()
    assert [p.name for p in boards.glob(".*.tmp")], "kill -9 left no temporary to clean"
    assert main(["leaderboard", str(results), "--out", str(boards)]) == 0
    assert list(boards.glob(".*.tmp")) == []
    assert (boards / "README.md").is_file()
