"""Leaderboard rendering from result objects alone."""

from __future__ import annotations

from pmrl_bench.leaderboard import build_leaderboards, check_leaderboards, write_leaderboards
from pmrl_bench.results import RunResult


def _result(objective, seed, r1, status="ok", config_id="c0", tau=None):
    scores = {"R@1": r1, "R@5": min(1.0, r1 + 0.2), "R@10": min(1.0, r1 + 0.3), "MdR": 3.0 - r1}
    params = {"objective": {"tau": tau} if tau is not None else {}, "task": {}, "encoders": {}, "budget": {"steps": 10}}
    return RunResult(
        run_id=f"t/{objective}/{config_id}-seed{seed}", config_id=config_id, task="t", objective=objective,
        params=params, seed=seed, status=status,
        metrics={"retrieval": {"a->b": scores, "b->a": scores} if status == "ok" else {},
                 "classification": {"linear:a": r1} if status == "ok" else None},
        versions={"pmrl_bench": "0.1.0", "torch": "x"}, command="pmrl-bench run",
    )


def test_mean_std_best_and_seed_counts():
    results = [_result("good", 0, 0.5), _result("good", 1, 0.7), _result("bad", 0, 0.1), _result("bad", 1, 0.0, status="diverged")]
    page = build_leaderboards(results)["t.md"]
    assert "**60.0 ± 14.1**" in page  # mean 0.6, sample std 0.1414, in %
    assert "| `bad`       | 1/2 (1 diverged, 0 failed) | 10.0 ± 0.0" in page
    assert "- Command: `pmrl-bench run`" in page and "steps=10" in page


def test_lower_is_better_for_median_rank():
    page = build_leaderboards([_result("good", 0, 0.9), _result("bad", 0, 0.1)])["t.md"]
    assert "**2.1 ± 0.0**" in page  # MdR 3 - 0.9, lowest wins


def test_configs_of_one_objective_are_told_apart_by_their_parameters():
    results = [_result("pmrl", 0, 0.5, config_id="c1", tau=0.05), _result("pmrl", 0, 0.6, config_id="c2", tau=0.01)]
    page = build_leaderboards(results)["t.md"]
    assert "`pmrl (objective.tau=0.01)`" in page and "`pmrl (objective.tau=0.05)`" in page


def test_rendering_is_deterministic_and_order_free(tmp_path):
    results = [_result("a", s, 0.1 * s) for s in range(3)] + [_result("b", 0, 0.4)]
    first = build_leaderboards(results)
    assert build_leaderboards(list(reversed(results))) == first
    write_leaderboards(tmp_path, first)
    assert check_leaderboards(tmp_path, first) == []
    (tmp_path / "README.md").unlink()
    assert check_leaderboards(tmp_path, first) == ["README.md"]
