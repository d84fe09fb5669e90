"""Reading a table source reliably: a size limit checked before reading, progress on large sources, CSV records
spanning lines, duplicate CSV headers, and the warnings a plan gives about its data (a test label never seen in
training, a test file that is the train file, --select best on a handful of validation rows)."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from pmrl_bench import create_task
from pmrl_bench.builtins.tasks import cache, table_sources
from pmrl_bench.cli import main
from pmrl_bench.errors import DataError, UsageError
from pmrl_bench.runner.spec import Budget
from pmrl_bench.runner.sweep_plan import SweepConfig, plan_sweep

TINY = ["--objectives", "infonce", "--tasks", "table", "--steps", "5", "--batch-size", "8", "--dim", "8",
        "--seeds", "1", "--device", "cpu", "--no-progress"]


@pytest.fixture(params=["datasets", "pandas"])
def reader(request, tmp_path, monkeypatch):
    """A test that reads a table runs through datasets (when installed) and through the pandas fallback."""
    monkeypatch.setenv(cache.ENV_CACHE, str(tmp_path / "cache"))
    if request.param == "datasets" and not cache.datasets_installed():
        pytest.skip("datasets not installed (optional extra 'data')")
    if request.param == "pandas":
        monkeypatch.setattr(cache, "datasets_installed", lambda: False)
    return request.param


def scalar_views(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n)
    return pd.DataFrame({"a": z + 0.1 * rng.standard_normal(n), "b": z + 0.1 * rng.standard_normal(n),
                         "c": rng.standard_normal(n), "y": (z > 0).astype(int)})


def _stderr_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def _results(tmp_path) -> list:
    return sorted((tmp_path / "results").rglob("*.json")) if (tmp_path / "results").exists() else []


# -- size and progress ---------------------------------------------------------------------------------------------


def test_a_source_above_the_size_limit_is_refused_before_reading(tmp_path, monkeypatch, capsys):
    scalar_views(200).to_csv(tmp_path / "big.csv", index=False)
    size = (tmp_path / "big.csv").stat().st_size
    monkeypatch.setenv(table_sources.ENV_MAX_SIZE, "2K")
    monkeypatch.setattr(cache, "datasets_installed", lambda: False)
    read = table_sources._read_with_pandas
    monkeypatch.setattr(table_sources, "_read_with_pandas", lambda *a: pytest.fail("read despite the limit"))
    with pytest.raises(DataError) as exc:
        create_task("table", source=str(tmp_path / "big.csv"), columns="a,b").load()
    message = str(exc.value)
    assert "\n" not in message and f"big.csv holds {size / 1024:.1f} KiB, above the 2.0 KiB a table source" in message
    assert f"set {table_sources.ENV_MAX_SIZE}=SIZE" in message
    monkeypatch.setattr(table_sources, "_read_with_pandas", read)
    monkeypatch.setenv(table_sources.ENV_MAX_SIZE, "0")  # no limit
    assert len(create_task("table", source=str(tmp_path / "big.csv"), columns="a,b").load().test) == 40
    monkeypatch.setenv(table_sources.ENV_MAX_SIZE, "lots")
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["run", *TINY, "--set", "task.table.source=big.csv", "--set", "task.table.columns=a,b"]) == 2
    assert _stderr_lines(capsys) == [f"pmrl-bench: error: {table_sources.ENV_MAX_SIZE}='lots' is not a size; give "
                                     "bytes or a number with K, M, G or T (e.g. 16G), or 0 for no limit"]
    assert _results(tmp_path) == []


@pytest.mark.parametrize(("text", "expected"), [("16G", 16 * 2**30), ("500M", 500 * 2**20), ("1.5 GiB", 3 * 2**29),
                                                ("123456", 123456), ("0", None), ("", table_sources.DEFAULT_MAX_SIZE)])
def test_the_size_limit_reads_sizes_as_people_write_them(monkeypatch, text, expected):
    monkeypatch.setenv(table_sources.ENV_MAX_SIZE, text)
    assert table_sources.max_size() == expected


def test_reading_a_large_source_says_so_and_shows_a_bar_on_a_terminal(tmp_path, monkeypatch, capsys, reader):
    scalar_views(100).to_csv(tmp_path / "large.csv", index=False)
    monkeypatch.setattr(table_sources, "PROGRESS_SIZE", 1024)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)  # tqdm draws bars on terminals only
    data = create_task("table", source=str(tmp_path / "large.csv"), columns="a,b").load()
    err = capsys.readouterr().err
    size = (tmp_path / "large.csv").stat().st_size
    assert f"pmrl-bench: task 'table': reading {size / 1024:.1f} KiB from {tmp_path / 'large.csv'}\n" in err
    if reader == "pandas":
        assert "large.csv" in err.split("\n", 1)[1]  # the byte bar, named by the file
    assert len(data.train) + len(data.validation) + len(data.test) == 100
    monkeypatch.setattr(table_sources, "PROGRESS_SIZE", 10 * size)
    create_task("table", source=str(tmp_path / "large.csv"), columns="a,b").load()
    assert capsys.readouterr().err == ""  # a small source reads quietly


# -- CSV records and headers ---------------------------------------------------------------------------------------


def test_a_csv_error_names_the_line_its_record_starts_on_when_quoted_fields_hold_newlines(tmp_path, reader):
    frame = scalar_views(20).assign(note=[f"item {i}" for i in range(20)])
    frame["note"] = frame["note"].astype(object)
    frame.at[2, "note"] = "first line\nsecond line"  # data row 2 spans lines 4 and 5
    frame.at[5, "note"] = "one\ntwo\nthree"  # data row 5 spans lines 8 to 10
    frame["b"] = frame["b"].astype(object)
    frame.at[9, "b"] = "oops"  # data row 9: line 14, not 11
    path = tmp_path / "notes.csv"
    frame.to_csv(path, index=False)
    assert path.read_text().splitlines()[13].split(",")[1] == "oops"
    with pytest.raises(DataError) as exc:
        create_task("table", source=str(path), columns="a,b,txt=note").load()
    assert f"column 'b': line 14 of {path} (1-based, the header is line 1) is 'oops'" in str(exc.value)


def test_a_csv_header_naming_a_column_twice_is_an_error(tmp_path, reader):
    path = tmp_path / "dupes.csv"
    path.write_text("a,b,c,b\n" + "".join(f"{i},{i + 1},{i + 2},{i + 3}\n" for i in range(20)))
    with pytest.raises(DataError) as exc:
        create_task("table", source=str(path), columns="a,b").load()
    assert str(exc.value) == (f"task 'table': {path} names column 'b' twice in its header (line 1, columns 2 and 4); "
                              "rename one, so that each name means one column")


# -- warnings about the data ---------------------------------------------------------------------------------------


def test_a_test_file_that_is_the_train_file_gives_a_warning(tmp_path, capsys):
    scalar_views(60).to_csv(tmp_path / "t.csv", index=False)
    create_task("table", source=str(tmp_path / "t.csv"), test_source=str(tmp_path / ".." / tmp_path.name / "t.csv"),
                columns="a,b").load()
    assert _stderr_lines(capsys) == [
        f"pmrl-bench: warning: task 'table': test_source is the same file as source "
        f"({tmp_path / '..' / tmp_path.name / 't.csv'}): every test row is also a train row, so the test scores "
        "measure memory, not generalisation"]


def _plan(fresh_manager, selection: str = "last", **task):
    """Plan (and so check and warn about) a one-run sweep of ``table`` with ``task`` parameters; nothing trains."""
    config = SweepConfig(objectives=["infonce"], tasks=["table"], seeds=1, budget=Budget(steps=5, batch_size=8),
                         overrides={("task", "table"): task}, device="cpu", selection=selection)
    return plan_sweep(config, fresh_manager.registry)


def test_a_test_label_never_seen_in_training_gives_a_warning(tmp_path, capsys, fresh_manager):
    frame = scalar_views(80)
    frame.loc[60:, "y"] = [2] * 5 + [0, 1] * 7 + [0]  # class 2 only in the test file
    frame[:60].to_csv(tmp_path / "train.csv", index=False)
    frame[60:].to_csv(tmp_path / "test.csv", index=False)
    _plan(fresh_manager, source=str(tmp_path), columns="p=a+c,q=b+c", label="y")
    assert [line for line in _stderr_lines(capsys) if "never seen" in line] == [
        "pmrl-bench: warning: task 'table': 5 of 20 test instances carry a label never seen in training (class ids 2); "
        "the classification probes cannot predict them, so accuracy is at most 75.0%"]
    frame.loc[60:, "y"] = [0, 1] * 10
    frame[60:].to_csv(tmp_path / "test.csv", index=False)
    _plan(fresh_manager, source=str(tmp_path), columns="p=a+c,q=b+c", label="y")
    assert not [line for line in _stderr_lines(capsys) if "never seen" in line]


def test_select_best_on_a_handful_of_validation_rows_gives_a_warning(tmp_path, capsys, fresh_manager):
    scalar_views(60).to_csv(tmp_path / "mine.csv", index=False)
    params = {"source": str(tmp_path / "mine.csv"), "columns": "p=a+c,q=b+c"}
    plan = _plan(fresh_manager, "best", **params)
    [line] = [line for line in _stderr_lines(capsys) if "--select best" in line]
    assert line == ("pmrl-bench: warning: task 'table': --select best picks the kept step by a validation split of "
                    "8 rows; at fewer than 50 its choice is mostly noise (give the task more validation rows, e.g. a "
                    "larger val_size, or use --select last)")
    assert len(plan.data["table"].validation) == 8
    _plan(fresh_manager, "last", **params)  # --select last: nothing to warn about
    assert not [line for line in _stderr_lines(capsys) if "--select best" in line]
    scalar_views(500).to_csv(tmp_path / "mine.csv", index=False)
    assert len(_plan(fresh_manager, "best", **params).data["table"].validation) == 60  # enough: no warning
    assert not [line for line in _stderr_lines(capsys) if "--select best" in line]


def test_a_bad_size_limit_is_a_usage_error(monkeypatch):
    monkeypatch.setenv(table_sources.ENV_MAX_SIZE, "-1G")
    with pytest.raises(UsageError, match="is not a size"):
        table_sources.max_size()
