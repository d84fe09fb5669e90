"""Where pmrl-bench writes: claims, leaderboard pages and their lock. A directory that cannot be used is one line
before anything trains; writers of one directory meet on one lock however they spell it; a page write that
fails or is interrupted leaves every page whole and no temporary behind."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from child_signals import start
from filelock import FileLock, Timeout
from reliability_helpers import assert_complete, run_args

from pmrl_bench.cli import main
from pmrl_bench.leaderboard import build_leaderboards, write_leaderboards
from pmrl_bench.results import ResultStore
from pmrl_bench.results.locks import output_lock, output_lock_path

FIXTURES = Path(__file__).with_name("fixtures")
KILLPOINTS = Path(__file__).with_name("killpoints.py")
CHILD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _results_with_fixtures(root: Path) -> ResultStore:
    store = ResultStore(root)
    for source in sorted((FIXTURES / "valid").glob("*.json")):
        result = ResultStore.read(source)
        target = store.path_for(result.task, result.objective, result.config_id, result.seed)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return store


def test_a_claims_path_that_is_a_file_stops_before_training(tmp_path, capsys):
    results = tmp_path / "results"
    store = _results_with_fixtures(results)
    before = {p: p.read_bytes() for p in results.rglob("*.json")}
    (results / ".claims").write_text("not a directory\n")
    assert main(run_args(results, tmp_path / "boards", seeds=1, steps=2)) == 2
    err = _one_line_error(capsys)
    assert f"run claims directory '{results / '.claims'}' is not usable" in err
    assert {p: p.read_bytes() for p in results.rglob("*.json")} == before  # nothing lost, nothing trained
    assert store.scan()[1] == []


def test_a_lock_path_that_is_a_file_stops_before_training(tmp_path, capsys):
    boards = tmp_path / "boards"
    (boards / ".locks").mkdir(parents=True)
    output_lock_path(boards).mkdir()  # a directory where the lock file goes: no lock can be taken there
    assert main(run_args(tmp_path / "results", boards, seeds=1, steps=2)) == 2
    assert "leaderboard directory" in _one_line_error(capsys)
    assert not (tmp_path / "results").exists()
    shutil.rmtree(boards / ".locks")
    (boards / ".locks").write_text("a file\n")
    assert main(["leaderboard", str(_results_with_fixtures(tmp_path / "r").root), "--out", str(boards)]) == 2
    assert ".locks is not a directory" in _one_line_error(capsys)


@pytest.mark.parametrize("denied", ["boards", "boards/.locks"])
def test_a_leaderboard_or_lock_directory_without_write_permission_stops_before_training(tmp_path, capsys, monkeypatch,
                                                                                       denied):
    """Another user's directory (0755, not ours): permissions do not bind root, so the check's own view of them,
    os.access, is what denies here."""
    boards = tmp_path / "boards"
    (boards / ".locks").mkdir(parents=True)
    target = (tmp_path / denied).resolve()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, *a, **k: False if Path(path).resolve() == target and
                        mode & os.W_OK else real_access(path, mode, *a, **k))
    assert main(run_args(tmp_path / "results", boards, seeds=1, steps=2)) == 2
    line = _one_line_error(capsys)
    assert "leaderboard directory" in line and "Permission denied" in line
    assert not (tmp_path / "results").exists()


def test_every_spelling_of_a_directory_and_every_tmpdir_share_one_lock(tmp_path, monkeypatch):
    """Before, the lock was keyed by the spelled path under the temporary directory: a symlink, or another TMPDIR,
    gave two writers two locks."""
    real = tmp_path / "boards"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    spellings = [real, link, tmp_path / "x" / ".." / "boards", Path(os.path.relpath(link))]
    (tmp_path / "x").mkdir()
    assert len({output_lock_path(s) for s in spellings}) == 1
    assert output_lock_path(real).is_relative_to(real)  # beside the output, not in a temporary directory
    with output_lock(link):
        monkeypatch.setenv("TMPDIR", str(tmp_path / "x"))
        other_writer = FileLock(output_lock_path(tmp_path / "x" / ".." / "boards"))
        with pytest.raises(Timeout):  # a second writer (another file description) cannot take it meanwhile
            other_writer.acquire(timeout=0)
    other_writer.acquire(timeout=0)
    other_writer.release()


def test_writers_never_share_a_temporary(tmp_path):
    """Another writer's temporary (the fixed name every writer used before) is not touched."""
    pages = build_leaderboards([ResultStore.read(FIXTURES / "valid" / "v1-ok.json")], plots=False)
    theirs = tmp_path / ".README.md.tmp"
    theirs.write_text("another writer's page, half written")
    write_leaderboards(tmp_path, pages)
    assert theirs.read_text() == "another writer's page, half written"
    assert (tmp_path / "README.md").read_text() == pages["README.md"]
    assert sorted(p.name for p in tmp_path.glob(".*.tmp")) == [".README.md.tmp"]


def test_a_full_disk_while_writing_pages_leaves_whole_pages_and_no_temporary(tmp_path, capsys, monkeypatch):
    results = _results_with_fixtures(tmp_path / "results").root
    boards = tmp_path / "boards"
    boards.mkdir()
    for name in ("README.md", "synthetic.md"):
        (boards / name).write_text(f"previous {name}\n")
    real_fsync, calls = os.fsync, []

    def fsync_then_full(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:  # the second page finds the disk full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_then_full)
    assert main(["leaderboard", str(results), "--out", str(boards)]) == 1
    err = _one_line_error(capsys)
    assert "cannot write leaderboard page" in err and "No space left on device" in err
    assert list(boards.glob("*.tmp")) == []
    assert (boards / "README.md").read_text().startswith("# pmrl-bench leaderboards")  # written before the error
    assert (boards / "synthetic.md").read_text() == "previous synthetic.md\n"  # untouched, not torn
    assert ResultStore(results).scan()[1] == []


def _paused(args: list[str], tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, **CHILD_ENV, "PMRL_TEST_PAUSED": str(tmp_path / "paused")}
    # the tests signal it: default dispositions whatever this process inherited (see child_signals)
    proc = start([sys.executable, str(KILLPOINTS), "board-pause", "1", *args],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    while not (tmp_path / "paused").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize(("sig", "name"), [(signal.SIGTERM, "SIGTERM"), (signal.SIGHUP, "SIGHUP"),
                                           (signal.SIGINT, "Ctrl-C")])
@pytest.mark.slow
def test_a_signal_while_pages_are_written_says_so_in_one_line(sig, name, tmp_path):
    """Before, SIGTERM and SIGHUP here ended the process silently and Ctrl-C spoke of resuming a sweep."""
    results = _results_with_fixtures(tmp_path / "results").root
    boards = tmp_path / "boards"
    proc = _paused(["leaderboard", str(results), "--out", str(boards)], tmp_path)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"interrupted by {name} while rebuilding the leaderboards in {boards}/" in lines[0]
    assert f"rebuild them with 'pmrl-bench leaderboard {results} --out {boards}'" in lines[0]
    assert not any(boards.glob("*.tmp")) and ResultStore(results).scan()[1] == []


@pytest.mark.slow
def test_a_signal_during_the_rebuild_after_a_sweep_keeps_the_results(tmp_path, capsys):
    results, boards = tmp_path / "results", tmp_path / "boards"
    args = run_args(results, boards, seeds=1, steps=3)
    proc = _paused(args, tmp_path)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert len(err.strip().splitlines()) == 1, err
    assert "while rebuilding the leaderboards" in err and "(the sweep finished (1 runs, results saved))" in err
    assert_complete(results, 1)
    assert main(args) == 0  # the next run finds the run done and writes the pages
    assert "1 runs: 0 ok, 0 diverged, 0 failed, 1 already done" in capsys.readouterr().out
