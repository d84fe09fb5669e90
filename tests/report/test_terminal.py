"""Results in the terminal: ``run`` ends with a table per task, ``show`` prints a task's main tables, and
``--json`` puts a machine-readable summary alone on stdout. Cells must be the leaderboard's cells."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from pmrl_bench.cli import main
from pmrl_bench.leaderboard import build_leaderboards
from pmrl_bench.results import ResultStore, RunResult

DIRECTIONS = ("a->b", "b->a")
TINY = ["--tasks", "synthetic", "--set", "task.synthetic.n_train=192", "--set", "task.synthetic.n_test=64",
        "--steps", "10", "--batch-size", "32", "--seeds", "2", "--device", "cpu", "--no-progress"]


def _result(task: str, objective: str, seed: int, r1: float, fused: float, status: str = "ok") -> RunResult:
    scores = {"R@1": r1, "R@5": min(1.0, r1 + 0.2), "R@10": min(1.0, r1 + 0.3), "MdR": 3.0 - r1}
    metrics = ({"retrieval": {d: scores for d in DIRECTIONS},
                "classification": {"linear:fused": fused, "knn:fused": fused / 2, "linear:a": 0.3}}
               if status == "ok" else {})
    return RunResult(
        run_id=f"{task}/{objective}/c0-seed{seed}", config_id="c0", task=task, objective=objective,
        params={"objective": {}, "task": {}, "encoders": {}, "budget": {"steps": 10}}, seed=seed, status=status,
        metrics=metrics, versions={"pmrl_bench": "0.1.0"}, command="pmrl-bench run",
    )


@pytest.fixture
def results_dir(tmp_path):
    """Two tasks; on t1 'good' beats 'bad' by far on three common seeds (rank 1 vs 2: ranks need three seeds in
    common), 'bad' has a diverged seed."""
    store = ResultStore(tmp_path / "results")
    results = [
        _result("t1", "good", 0, 0.80, 0.9), _result("t1", "good", 1, 0.84, 0.7), _result("t1", "good", 2, 0.82, 0.8),
        _result("t1", "bad", 0, 0.10, 0.5), _result("t1", "bad", 1, 0.12, 0.6), _result("t1", "bad", 2, 0.11, 0.55),
        _result("t1", "bad", 3, 0, 0, "diverged"),
        _result("t2", "good", 0, 0.5, 0.5), _result("t2", "good", 1, 0.6, 0.6),
    ]
    for result in results:
        store.write(result)
    return tmp_path / "results"


def _table_row(text: str, label: str) -> list[str]:
    """The cells of the terminal table row of ``label`` (columns are separated by two or more spaces)."""
    line = next(line for line in text.splitlines() if f" {label} " in f" {line} ")
    return re.split(r"\s{2,}", line.strip())


def _leaderboard_cell(results_dir, task: str, label: str, column: int) -> str:
    """A cell of the leaderboard page's main table, bold marks removed."""
    results, _ = ResultStore(results_dir).scan()
    page = build_leaderboards(results, plots=False)[f"{task}.md"]
    row = next(line for line in page.splitlines() if line.startswith("|") and f"`{label} [" in line)
    return row.split("|")[column].strip().strip("*")


def test_show_prints_every_task_with_the_leaderboards_cells(results_dir, capsys):
    assert main(["show", "--results", str(results_dir)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    t1 = captured.out.split("t2 (")[0]
    good, bad = _table_row(t1, "good"), _table_row(t1, "bad")
    assert (good[:3] == ["1", "good [scratch, last]", "3/3"]
            and bad[:3] == ["2", "bad [scratch, last]", "3/4 (1 diverged)"])
    assert good[3] == _leaderboard_cell(results_dir, "t1", "good", 4)  # mean R@1, same statistics as the page
    assert bad[6] == _leaderboard_cell(results_dir, "t1", "bad", 7)  # mean MdR
    assert "t2 (1 configurations, 2 runs)" in captured.out
    classification = t1.split("classification")[1]
    headers = re.split(r"\s{2,}", classification.splitlines()[1].strip())
    assert headers[2:5] == ["linear:fused", "knn:fused", "linear:a"]  # fused probes first
    assert _table_row(classification, "good")[2] == "80.0 ± 10.0"


def test_show_one_task_and_json_alone_on_stdout(results_dir, capsys):
    assert main(["show", "t1", "--results", str(results_dir), "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)  # nothing but the JSON on stdout
    assert "good" in captured.err and "t2" not in captured.err  # the tables went to stderr
    assert list(summary["tasks"]) == ["t1"]
    good, bad = summary["tasks"]["t1"]["configurations"]
    assert (good["objective"], good["rank"], bad["objective"], bad["rank"]) == ("good", 1, "bad", 2)
    assert bad["seeds"] == {"ok": 3, "diverged": 1, "failed": 0, "total": 4}
    r1 = good["retrieval"]["R@1"]
    assert r1["mean"] == pytest.approx(0.82) and r1["std"] == pytest.approx(np.std([0.8, 0.84, 0.82], ddof=1))
    assert r1["low"] <= r1["mean"] <= r1["high"] and r1["interval"] == "seeds"
    assert set(good["retrieval"]) == {"R@1", "R@5", "R@10", "MdR"}
    assert good["classification"]["linear:fused"]["mean"] == pytest.approx(0.8)


@pytest.mark.parametrize(("argv", "expected"), [
    (["show", "nope"], "no results for task 'nope'"),
    (["show", "--results", "missing"], "does not exist"),
    (["show", "--results", "empty"], "no result files in empty/"),
])
def test_show_bad_input_is_one_line_and_exit_2(argv, expected, results_dir, tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err and "Traceback" not in err


@pytest.mark.slow
def test_run_ends_with_a_table_per_task_also_when_everything_was_done(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--objectives", "infonce,anchor", *TINY]) == 0
    first = capsys.readouterr().out
    assert "4 runs: 4 ok" in first
    row = _table_row(first, "infonce")
    assert row[2] == "2/2" and row[3] == _leaderboard_cell(tmp_path / "results", "synthetic", "infonce", 4)
    assert "fused linear probe" in first and _table_row(first, "anchor")[1] == "anchor [scratch, last]"

    assert main(["run", "--objectives", "infonce,anchor", *TINY, "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["runs"]["already_done"] == 4 and summary["runs"]["ok"] == 0
    assert "4 already done" in captured.err and _table_row(captured.err, "infonce")[3] == row[3]
    configurations = {c["objective"]: c for c in summary["tasks"]["synthetic"]["configurations"]}
    stored = [json.loads(p.read_text()) for p in (tmp_path / "results" / "synthetic" / "infonce").glob("*.json")]
    per_seed = [np.mean([s["R@1"] for s in r["metrics"]["retrieval"].values()]) for r in stored]
    assert configurations["infonce"]["retrieval"]["R@1"]["mean"] == pytest.approx(np.mean(per_seed))
    fused = [r["metrics"]["classification"]["linear:fused"] for r in stored]
    assert configurations["infonce"]["classification"]["linear:fused"]["mean"] == pytest.approx(np.mean(fused))
