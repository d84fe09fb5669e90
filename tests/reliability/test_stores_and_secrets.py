"""Stores and secrets fail in one line.

* Every fault of the tuning store (its directory is a file, the database is read-only, unopenable, made by another
  program, or the disk fills up in the middle of a study) is one line naming the store and what to do, exit status 2,
  before any trial trains when it can be known then.
* A password in a URL never reaches a message, a result file or a tuned-parameter file.
* A file-system error while saving an init stage stops the command with one line and is never a ``failed`` run.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from reliability_helpers import TINY, one_error_line

from pmrl_bench import hookimpl
from pmrl_bench.cli import main
from pmrl_bench.redact import mask_secrets, mask_url
from pmrl_bench.results import ResultStore

TUNE = ["tune", *TINY, "--steps", "4", "--dim", "8", "--trials", "2"]


# -- the tuning store ----------------------------------------------------------------------------------------------

def _file_in_the_way(root: Path) -> list[str]:
    root.mkdir()
    (root / "_tuning").write_text("not a directory")
    return []


def _locks_in_the_way(root: Path) -> list[str]:
    (root / "_tuning").mkdir(parents=True)
    (root / "_tuning" / ".locks").write_text("not a directory")
    return []


def _garbage_database(root: Path) -> list[str]:
    (root / "_tuning").mkdir(parents=True)
    (root / "_tuning" / "studies.db").write_bytes(b"\x00\x01 not a database at all " * 40)
    return []


def _foreign_database(root: Path) -> list[str]:
    (root / "_tuning").mkdir(parents=True)
    with sqlite3.connect(root / "_tuning" / "studies.db") as db:  # another program's table of the same name
        db.execute("create table studies (id integer primary key, title text)")
    return []


def _foreign_schema_version(root: Path) -> list[str]:
    (root / "_tuning").mkdir(parents=True)
    with sqlite3.connect(root / "_tuning" / "studies.db") as db:  # migrated by a program Optuna does not know
        db.execute("create table alembic_version (version_num varchar(32) not null)")
        db.execute("insert into alembic_version values ('zz-not-optuna')")
    return []


def _read_only_database(root: Path) -> list[str]:
    database = root / "elsewhere.db"
    root.mkdir()
    with sqlite3.connect(database) as db:
        db.execute("create table t (x)")
    # SQLite opens it read-only whoever runs the test (permission bits do not stop root)
    return ["--storage", f"sqlite:///file:{database}?mode=ro&uri=true"]


def _unopenable_directory(root: Path) -> list[str]:
    root.mkdir()
    blocker = root / "blocker"
    blocker.write_text("a file, so nothing can be created under it")
    return ["--storage", f"sqlite:///{blocker}/studies.db"]


STORE_FAULTS = [
    ("tuning directory is a file", _file_in_the_way, "is in the way", "_tuning"),
    ("lock directory is a file", _locks_in_the_way, "is in the way", ".locks"),
    ("not a database", _garbage_database, "not a study database", "studies.db"),
    ("another program's table", _foreign_database, "not a study database", "studies.db"),
    ("another program's schema version", _foreign_schema_version, "not a study database", "studies.db"),
    ("read-only database", _read_only_database, "cannot be written", "--storage"),
    ("directory cannot hold it", _unopenable_directory, "cannot be written", "--storage"),
]


@pytest.mark.parametrize(("case", "make", "says", "names"), STORE_FAULTS, ids=[c[0] for c in STORE_FAULTS])
def test_a_store_fault_is_one_line_before_any_trial(case, make, says, names, tmp_path, capsys, no_training):
    root = tmp_path / "results"
    extra = make(root)
    err = one_error_line(capsys, main([*TUNE, "--objectives", "infonce", "--results", str(root), *extra]))
    assert says in err and names in err, err
    assert not list((root / "_tuning").rglob("*.json")) if (root / "_tuning").is_dir() else True


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
@pytest.mark.parametrize("read_only", ["database", "directory", "both"])
def test_a_read_only_store_on_disk_is_one_line_before_any_trial(read_only, tmp_path, capsys, no_training):
    root = tmp_path / "results"
    assert main([*TUNE, "--objectives", "infonce", "--trials", "1", "--results", str(root)]) == 0  # a real store
    capsys.readouterr()
    tuning, database = root / "_tuning", root / "_tuning" / "studies.db"
    if read_only in ("database", "both"):
        database.chmod(0o444)
    if read_only in ("directory", "both"):
        tuning.chmod(0o555)
    try:
        err = one_error_line(capsys, main([*TUNE, "--objectives", "infonce", "--results", str(root)]))
    finally:
        tuning.chmod(0o755)
        database.chmod(0o644)
    assert "_tuning" in err and ("cannot" in err or "read-only" in err), err


@pytest.mark.parametrize("message", ["database or disk is full", "disk I/O error", "attempt to write a readonly "
                                     "database"])
def test_a_store_fault_in_the_middle_of_a_study_isone_error_line(message, tmp_path, capsys, monkeypatch):
    """The first trial is stored; the store then fails on the second (a full disk, a failing one, a remount)."""
    import optuna
    from sqlalchemy.exc import OperationalError

    original = optuna.storages.RDBStorage.set_trial_state_values
    told = []

    def failing(self, trial_id, state, values=None):
        if told:
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from \
                OperationalError("UPDATE trials", {}, sqlite3.OperationalError(message))
        if values is not None:
            told.append(trial_id)
        return original(self, trial_id, state, values)

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_state_values", failing)
    root = tmp_path / "results"
    err = one_error_line(capsys, main([*TUNE, "--trials", "3", "--objectives", "infonce", "--results", str(root)]))
    assert message in err and "studies.db" in err and told, err


@pytest.mark.slow
def test_a_file_size_limit_reached_by_the_database_isone_error_line(tmp_path):
    """A real write failure, whoever runs the test: the process may not grow the database past its size."""
    import resource
    import signal
    import subprocess
    import sys

    root = tmp_path / "results"
    args = [sys.executable, "-m", "pmrl_bench", *TUNE, "--objectives", "infonce", "--results", str(root)]
    assert subprocess.run([*args, "--trials", "1"], capture_output=True).returncode == 0
    size = (root / "_tuning" / "studies.db").stat().st_size

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG for the write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 4096, size + 4096))

    done = subprocess.run([*args, "--trials", "40"], capture_output=True, text=True, preexec_fn=limit, timeout=600)
    err = done.stderr.strip()
    assert done.returncode == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "studies.db" in err and "disk" in err, err


# -- secrets ------------------------------------------------------------------------------------------------------

SECRET = "s3cret-Pa55word"
URLS = [
    f"postgresql://alice:{SECRET}@127.0.0.1:1/studies",
    f"postgresql+psycopg2://alice:{SECRET}@db.internal:5432/studies?sslmode=require",
    f"mysql+pymysql://alice:{SECRET}@127.0.0.1:1/studies",
    f"sqlite://alice:{SECRET}@/tmp/studies.db",
    f"nosuchdialect://alice:{SECRET}@host/db",
]


@pytest.mark.parametrize("url", URLS)
def test_a_storage_password_never_reaches_the_terminal(url, tmp_path, capsys):
    code = main([*TUNE, "--objectives", "infonce", "--results", str(tmp_path / "r"), "--storage", url])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert SECRET not in captured.out + captured.err
    assert "alice:***@" in captured.err, captured.err
    assert len(captured.err.strip().splitlines()) == 1


@pytest.mark.parametrize(("text", "masked"), [
    (f"postgresql://alice:{SECRET}@h/db", "postgresql://alice:***@h/db"),
    (f"see 'mysql://u:{SECRET}@h:3306/x' and https://tok:{SECRET}@git.example/r.git",
     "see 'mysql://u:***@h:3306/x' and https://tok:***@git.example/r.git"),
    (f"redis://:{SECRET}@cache:6379/0", "redis://:***@cache:6379/0"),
    *[(kept, kept) for kept in ("postgresql://alice@h/db and http://host:8080/path stay", "sqlite:///a/b.db")],
])
def test_mask_secrets_masks_every_url_password(text, masked):
    assert mask_secrets(text) == masked


def test_a_password_is_masked_wherever_a_driver_repeats_it():
    url = f"postgresql://alice:{SECRET}@h/db"
    assert mask_url(url) == "postgresql://alice:***@h/db"
    said = f'FATAL: password "{SECRET}" rejected (dsn: password={SECRET.replace("-", "%2D")})'
    assert SECRET not in mask_secrets(said, url) and "***" in mask_secrets(said, url)
    assert mask_url("sqlite:///plain/path.db") == "sqlite:///plain/path.db"


class LeakyPlugin:
    """An objective whose failure message quotes a URL with its password (a plugin that talks to a server)."""

    @hookimpl
    def register_objectives(self, register):
        register("leaky", _leaky)


def _leaky():
    import torch

    class Leaky(torch.nn.Module):
        def forward(self, embeddings):
            raise ConnectionError(f"cannot log to postgresql://alice:{SECRET}@metrics/db")

    return Leaky()


def test_the_recorded_command_line_is_masked():
    from pmrl_bench.cli.app import build_parser
    from pmrl_bench.cli.options import sweep_config
    from pmrl_bench.plugins import get_registry

    argv = ["run", "--objectives", "infonce", "--set", f"task.synthetic.source=https://bob:{SECRET}@data.example/x"]
    config = sweep_config(build_parser().parse_args(argv), argv, get_registry())
    assert SECRET not in config.command and "https://bob:***@data.example/x" in config.command


def test_results_and_pages_never_hold_a_password(tmp_path, capsys, pmrl_register_plugin):
    """A failed run's error quoting a URL with its password is stored, shown and paged masked."""
    pmrl_register_plugin(LeakyPlugin())
    results = tmp_path / "results"
    boards = tmp_path / "boards"
    code = main(["run", "--objectives", "leaky,infonce", *TINY, "--steps", "3", "--seeds", "1",
                 "--results", str(results), "--leaderboard", str(boards)])
    captured = capsys.readouterr()
    assert code == 1  # the leaky objective's run failed
    assert SECRET not in captured.out + captured.err
    found, problems = ResultStore(results).scan()
    assert not problems and len(found) == 2
    for path in results.rglob("*.json"):
        text = path.read_text()
        assert SECRET not in text, path
        if "leaky" in path.parts:
            assert "alice:***@metrics" in json.loads(text)["error"]
    for page in boards.rglob("*.md"):
        assert SECRET not in page.read_text(), page


# -- init stages that cannot be saved ------------------------------------------------------------------------------

@pytest.mark.parametrize("blocker", ["_init", "_init/synthetic"])
def test_an_init_stage_that_cannot_be_saved_stops_the_sweep_and_fails_no_run(blocker, tmp_path, capsys):
    results = tmp_path / "results"
    (results / blocker).parent.mkdir(parents=True, exist_ok=True)
    (results / blocker).write_text("a file where the init stages go")
    code = main(["run", "--objectives", "infonce,pmrl", *TINY, "--steps", "3", "--seeds", "2", "--init",
                 "infonce:3", "--results", str(results), "--leaderboard", str(tmp_path / "boards")])
    err = one_error_line(capsys, code, expected=1)
    assert "cannot save init stage" in err and "nothing was recorded as failed" in err, err
    assert ResultStore(results).scan() == ([], [])  # no run stored, as failed or otherwise


@pytest.mark.slow
def test_an_init_stage_that_cannot_be_saved_in_a_worker_stops_the_sweep_withone_error_line(tmp_path):
    import subprocess
    import sys

    results = tmp_path / "results"
    results.mkdir()
    (results / "_init").write_text("a file where the init stages go")
    done = subprocess.run([sys.executable, "-m", "pmrl_bench", "run", "--objectives", "infonce,pmrl", *TINY,
                           "--steps", "3", "--seeds", "2", "--init", "infonce:3", "--jobs", "2",
                           "--results", str(results), "--leaderboard", str(tmp_path / "boards")],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PMRL_BENCH_LOAD_PLUGINS": "", "OMP_NUM_THREADS": "1"})
    err = done.stderr.strip()
    assert done.returncode == 1 and len(err.splitlines()) == 1 and "cannot save init stage" in err, err
    assert ResultStore(results).scan() == ([], [])


def test_a_tune_whose_init_stage_cannot_be_saved_stops_withone_error_line(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    (results / "_init").write_text("a file where the init stages go")
    code = main([*TUNE, "--objectives", "infonce", "--init", "infonce:3", "--results", str(results)])
    err = one_error_line(capsys, code, expected=1)
    assert "cannot save init stage" in err, err
    assert not list((results / "_tuning").rglob("*.json"))
