"""``pmrl-bench compare``: what moved between two results directories, matched per task and configuration."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pmrl_bench.cli import main
from pmrl_bench.evaluation.per_query import encode_ranks
from pmrl_bench.leaderboard.compare import compare_results, comparison_markdown
from pmrl_bench.results import RunResult

TINY = ["--tasks", "synthetic", "--set", "task.synthetic.n_train=256", "--set", "task.synthetic.n_test=128",
        "--steps", "10", "--batch-size", "32", "--seeds", "2", "--device", "cpu", "--no-progress"]


def _table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| task")]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.slow
def test_one_changed_configuration_is_exactly_what_is_reported(tmp_path, capsys):
    old, new = tmp_path / "old", tmp_path / "new"
    assert main(["run", "--objectives", "infonce,anchor", *TINY, "--results", str(old),
                 "--leaderboard", str(tmp_path / "lb")]) == 0
    shutil.copytree(old, new)
    shutil.rmtree(new / "synthetic" / "infonce")
    assert main(["run", "--objectives", "infonce", *TINY, "--set", "objective.infonce.temperature=0.05",
                 "--results", str(new), "--leaderboard", str(tmp_path / "lb")]) == 0
    capsys.readouterr()

    assert main(["compare", str(old), str(new), "--out", str(tmp_path / "compare.md")]) == 0
    text = (tmp_path / "compare.md").read_text()
    assert "**1 moved**" in text and "0 new, 0 vanished, 1 unchanged" in text
    (row,) = _table_rows(text)
    assert "`infonce [scratch, last]`" in row and "objective.temperature 0.07 → 0.05" in row and "2/2 → 2/2" in row
    assert "anchor" not in text

    # The same directory on both sides: nothing moved. Output goes to standard output without --out.
    assert main(["compare", str(old), str(old)]) == 0
    same = capsys.readouterr().out
    assert "**0 moved**" in same and "2 unchanged" in same and not _table_rows(same)

    # A configuration on one side only is new (or vanished), not moved.
    shutil.rmtree(new / "synthetic" / "anchor")
    assert main(["compare", str(old), str(new)]) == 0
    gone = capsys.readouterr().out
    assert "0 new, 1 vanished, 0 unchanged" in gone and "**Vanished:** synthetic `anchor [scratch, last]`" in gone

    # Other test queries (a changed data fingerprint) give an unpaired interval and a note, not a test.
    other = tmp_path / "other"
    shutil.copytree(old, other)
    for path in (other / "synthetic" / "anchor").glob("*.json"):
        raw = json.loads(path.read_text())
        raw["data_fingerprint"] = "0" * 16
        path.write_text(json.dumps(raw))
    assert main(["compare", str(old), str(other)]) == 0
    (row,) = _table_rows(capsys.readouterr().out)
    assert "`anchor [scratch, last]`" in row and "not tested: different test queries: unpaired interval, no test" in row


def _result(objective: str, seed: int, r1: float, n: int = 300) -> RunResult:
    hits = np.random.default_rng([seed, int(r1 * 100)]).random((2, n)) < r1
    ranks = {d: np.where(h, 1, 2) for d, h in zip(("a->b", "b->a"), hits)}
    return RunResult(
        run_id=f"t/{objective}/c0-seed{seed}", config_id="c0", task="t", objective=objective,
        params={"objective": {}, "task": {}, "encoders": {}, "budget": {"steps": 10}}, seed=seed, status="ok",
        metrics={"retrieval": {d: {"R@1": float((r == 1).mean()), "R@5": 1.0, "R@10": 1.0, "MdR": 1.0}
                               for d, r in ranks.items()},
                 "per_query_ranks": {"retrieval": {d: encode_ranks(r) for d, r in ranks.items()}}},
        versions={"pmrl_bench": "0.1.0"}, data_fingerprint="f",
    )


def test_a_clear_improvement_is_significant_and_a_lost_seed_is_named():
    old = [_result("up", s, 0.3) for s in range(3)] + [_result("same", s, 0.5) for s in range(3)]
    new = [_result("up", s, 0.6) for s in range(2)] + [_result("same", s, 0.5) for s in range(3)]
    comparison = compare_results(old, new)
    (moved,) = comparison.moved
    assert moved.label == "up [scratch, last]" and moved.test.seeds == (0, 1) and comparison.unchanged == 1
    assert moved.test.delta > 0.2 and moved.test.interval[0] > 0 and moved.test.p_corrected < 0.001
    text = comparison_markdown(comparison, "old", "new")
    (row,) = _table_rows(text)
    assert "better (seed 2 only in old)" in row and "3/3 → 2/2" in row and "(1 significantly)" in text
    # Seed level: two seeds in common are too few for a test over seeds (the query-level test still runs).
    assert moved.seeds.seeds == (0, 1) and moved.seeds.p_value is None and "too few seeds" in row
    assert "query-level p (Holm, given these trained models)" in text


def test_bad_directories_are_one_line_errors(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "missing"), str(tmp_path)]) == 2
    assert "old results directory" in _one_line_error(capsys)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "holds a result file" in _one_line_error(capsys)
    (tmp_path / "b" / "t" / "x").mkdir(parents=True)
    (tmp_path / "b" / "t" / "x" / "c0-seed0.json").write_text(_result("x", 0, 0.5).model_dump_json())
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "no" / "where.md")]) == 2
    assert "cannot write --out" in _one_line_error(capsys)
