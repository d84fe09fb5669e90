"""The command line: exit statuses, one-line errors, and an end-to-end run in a temporary directory."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pmrl_bench.cli import main

TINY = ["--tasks", "synthetic", "--set", "task.synthetic.n_train=256", "--set", "task.synthetic.n_test=128",
        "--steps", "20", "--batch-size", "32", "--seeds", "2", "--device", "cpu", "--no-progress"]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--objectives", "nope"], "unknown objective 'nope'"),
        (["run", "--objectives", "pmrl", "--tasks", "nope"], "unknown task 'nope'"),
        (["run", "--objectives", "pmrl", "--set", "objective.pmrl.tau1=abc"], "expected a number"),
        (["run", "--objectives", "pmrl", "--set", "objective.pmrl.tau9=1"], "unknown parameter"),
        (["run", "--objectives", "pmrl", "--set", "objective.pmrl.tau1=-1"], "tau1 and tau2 must be > 0"),
        (["run", "--objectives", "pmrl", "--set", "tau1=1"], "KIND.NAME.KEY=VALUE"),
        (["run", "--objectives", "pmrl", "--steps", "0"], "--steps must be between 1 and"),
        (["run", "--objectives", "pmrl", "--device", "tpu"], "--device must be"),
        (["run", "--objectives", "pmrl", "--encoder", "m0=nope"], "unknown encoder 'nope'"),
        (["run", "--seeds", "x"], "invalid int value"),
        (["list", "widgets"], "invalid choice"),
        (["leaderboard", "/no/such/dir"], "does not exist"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert expected in _one_line_error(capsys)


def test_unknown_objective_lists_what_is_available(capsys):
    assert main(["run", "--objectives", "pmrl,nope"]) == 2
    err = _one_line_error(capsys)
    assert "pmrl" in err and "infonce" in err


def test_list_names_the_plugin_of_each_component(capsys):
    assert main(["list", "objectives"]) == 0
    out = capsys.readouterr().out
    assert "pmrl" in out and "[pmrl_bench.builtins.objectives]" in out
    assert main(["list", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert {e["kind"] for e in entries} == {"objective", "encoder", "task"}
    assert all(e["plugin"] for e in entries)


def test_plugins_json_is_valid(capsys):
    assert main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    objectives = {n for p in data["plugins"] for n in p["registered"]["objectives"]}
    assert {"pmrl", "infonce"} <= objectives and data["failures"] == []


@pytest.mark.slow
def test_run_writes_results_and_leaderboards_then_check_passes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--objectives", "pmrl,infonce", *TINY]) == 0
    assert "4 runs: 4 ok" in capsys.readouterr().out
    page = (tmp_path / "leaderboards" / "synthetic.md").read_text()
    assert "`pmrl [scratch, last]`" in page and "`infonce [scratch, last]`" in page and "steps=20" in page
    assert len(list((tmp_path / "results").rglob("*.json"))) == 4
    assert main(["leaderboard", "results", "--check"]) == 0
    (tmp_path / "leaderboards" / "synthetic.md").write_text(page + "edited\n")
    assert main(["leaderboard", "results", "--check"]) == 1
    assert "stale: synthetic.md" in capsys.readouterr().err
    assert main(["leaderboard", "results"]) == 0
    assert (tmp_path / "leaderboards" / "synthetic.md").read_text() == page


def test_module_entry_point_is_the_cli_twin():
    done = subprocess.run([sys.executable, "-m", "pmrl_bench", "--version"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0 and done.stdout.startswith("pmrl-bench ")
