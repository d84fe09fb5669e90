"""Paired significance between configurations: calibration under the null, power, Holm, missing seeds, ranks,
and the Friedman/Nemenyi comparison across tasks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pmrl_bench.evaluation.per_query import encode_ranks
from pmrl_bench.leaderboard.data import runs_of
from pmrl_bench.leaderboard.significance import (
    PairedTest, critical_difference_table, friedman_nemenyi, holm, paired_test, pairwise_tests,
)
from pmrl_bench.results import RunResult

DIRECTIONS = ("a->b", "b->a")


def _result(objective: str, seed: int, hits: np.ndarray, task: str = "t", status: str = "ok",
            fingerprint: str = "f0") -> RunResult:
    """A result whose per-query ranks are 1 where ``hits[direction, query]`` is true and 2 elsewhere."""
    metrics: dict = {}
    if status == "ok":
        ranks = {d: np.where(h, 1, 2) for d, h in zip(DIRECTIONS, hits)}
        metrics["retrieval"] = {
            d: {"R@1": float((r <= 1).mean()), "R@5": 1.0, "R@10": 1.0, "MdR": float(np.median(r))}
            for d, r in ranks.items()
        }
        metrics["per_query_ranks"] = {"retrieval": {d: encode_ranks(r) for d, r in ranks.items()}}
    return RunResult(
        run_id=f"{task}/{objective}/c0-seed{seed}", config_id="c0", task=task, objective=objective,
        params={"objective": {}, "task": {}, "encoders": {}, "budget": {"steps": 10}}, seed=seed, status=status,
        metrics=metrics, versions={"pmrl_bench": "0.1.0"}, data_fingerprint=fingerprint,
    )


def _hits(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """(directions, queries) Bernoulli hits with per-query hit probability ``p``."""
    return rng.random((len(DIRECTIONS), len(p))) < p


def _rows(results: list[RunResult], task: str = "t") -> dict:
    """``{objective: runs}``: the leaderboard's rows, keyed by the objective's name (labels add the protocol tag)."""
    rows: dict = {}
    for run in runs_of(results)[task]:
        run.label = run.result.objective
        rows.setdefault(run.label, []).append(run)
    return rows


def test_two_copies_of_one_configuration_do_not_differ():
    rng = np.random.default_rng(0)
    hits = [_hits(rng, np.full(120, 0.4)) for _ in range(3)]
    results = [_result(name, s, h) for name in ("copy-a", "copy-b") for s, h in enumerate(hits)]
    rows = _rows(results)
    (test,) = pairwise_tests(rows)
    assert test.delta == 0 and test.interval == (0.0, 0.0)
    assert test.p_value == 1.0 and test.p_corrected == 1.0
    assert test.verdict() == "no significant difference"


def test_p_values_are_uniform_and_intervals_cover_zero_under_the_null():
    """50 repeats of two configurations whose hits are drawn from the same per-query probabilities."""
    p_values, covered = [], 0
    for repeat in range(50):
        rng = np.random.default_rng(1000 + repeat)
        difficulty = rng.uniform(0.05, 0.95, size=150)  # queries differ in difficulty; A and B share it
        results = [_result(name, s, _hits(rng, difficulty)) for s in range(3) for name in ("a", "b")]
        rows = _rows(results)
        test = paired_test(rows["a"], rows["b"], "a", "b", n_resamples=999)
        p_values.append(test.p_value)
        covered += test.interval[0] <= 0 <= test.interval[1]
    assert stats.kstest(p_values, "uniform").pvalue > 0.01
    assert np.mean(np.array(p_values) < 0.05) <= 0.12
    assert covered >= 44  # nominal 95% of 50 = 47.5


def test_a_clearly_better_configuration_is_significant():
    rng = np.random.default_rng(1)
    results = [_result(name, s, _hits(rng, np.full(200, p)))
               for s in range(3) for name, p in (("strong", 0.6), ("weak", 0.4))]
    rows = _rows(results)
    (test,) = pairwise_tests(rows)
    assert (test.a, test.b) == ("strong", "weak")  # oriented so that A is ahead
    assert 0.1 < test.delta < 0.3 and test.interval[0] > 0
    assert test.p_corrected < 0.001 and test.better() == "strong"


def test_holm_correction_is_applied():
    tests = [PairedTest("a", "b", 0.1, None, 0.02), PairedTest("a", "c", 0.1, None, 0.5),
             PairedTest("b", "c", 0.1, None, 0.01), PairedTest("x", "y", 0.1, None, None, note="no seed")]
    corrected = holm(tests)
    # Holm: sorted p (0.01, 0.02, 0.5) times (3, 2, 1), made monotone: 0.03, 0.04, 0.5.
    assert [t.p_corrected for t in corrected] == pytest.approx([0.04, 0.5, 0.03, None])
    assert corrected[3].p_corrected is None
    # Corrected ranks follow the corrected p: uncorrected, a at 0.02 would beat b... and here it still does.
    assert [t.significant() for t in corrected] == [True, False, True, False]
    # With five more pairs the same p = 0.02 no longer survives the correction.
    more = holm(tests[:1] + [PairedTest("p", f"q{i}", 0.1, None, 0.9) for i in range(5)])
    assert tests[0].significant() and not more[0].significant() and more[0].p_corrected == pytest.approx(0.12)


def test_seeds_missing_on_one_side_are_left_out_and_named():
    rng = np.random.default_rng(3)
    base = [_hits(rng, np.full(100, 0.5)) for _ in range(3)]
    results = [_result("full", s, h) for s, h in enumerate(base)]
    results += [_result("part", 0, base[0]), _result("part", 1, base[1]), _result("part", 2, base[2], status="failed")]
    results.append(_result("full", 3, np.ones((2, 100), dtype=bool)))  # a seed only one side has: must not count
    rows = _rows(results)
    test = paired_test(rows["full"], rows["part"], "full", "part")
    assert test.seeds == (0, 1) and test.queries == 100 and test.paired
    assert test.delta == 0 and test.p_value == 1.0
    assert "seed 2 only in full" in test.note and "seed 3 only in full" in test.note


def test_no_common_seed_and_different_test_queries_are_not_tested():
    rng = np.random.default_rng(4)
    results = [_result("a", 0, _hits(rng, np.full(50, 0.5))), _result("b", 1, _hits(rng, np.full(50, 0.5)))]
    results += [_result("c", 0, _hits(rng, np.full(50, 0.9)), fingerprint="other")]
    rows = _rows(results)
    no_seed = paired_test(rows["a"], rows["b"], "a", "b")
    assert no_seed.p_value is None and not no_seed.paired and "no seed finished on both sides" in no_seed.verdict()
    other = paired_test(rows["c"], rows["a"], "c", "a")
    assert other.p_value is None and not other.paired and "different test queries" in other.note
    assert other.delta > 0.2 and other.interval is not None and other.interval[0] > 0  # unpaired, still an interval
    assert all(t.p_value is None and t.verdict().startswith("not tested") for t in pairwise_tests(rows))


def _friedman_results(scores: dict[str, dict[str, float]], n: int = 40) -> list[RunResult]:
    """One seed per (task, configuration) whose mean R@1 is exactly the given score (n queries)."""
    out = []
    for task, by_config in scores.items():
        for config, r1 in by_config.items():
            hits = np.zeros((2, n), dtype=bool)
            hits[:, : round(r1 * n)] = True
            out.append(_result(config, 0, hits, task=task))
    return out


def _by_objective(results: list[RunResult]) -> dict:
    """``runs_of`` with each run labelled by its objective's name (labels add the protocol tag)."""
    tasks = runs_of(results)
    for runs in tasks.values():
        for run in runs:
            run.label = run.result.objective
    return tasks


def test_friedman_nemenyi_across_tasks():
    scores = {t: {"best": 0.8 - i * 0.05, "middle": 0.5, "worst": 0.2 + i * 0.05} for i, t in enumerate("pqrstu")}
    scores["p"]["extra"] = 0.9  # not on every task: left out
    comparison = friedman_nemenyi(_by_objective(_friedman_results(scores)))
    assert comparison is not None and comparison.left_out == ("extra",)
    assert comparison.mean_ranks.to_dict() == {"best": 1.0, "middle": 2.0, "worst": 3.0}
    assert comparison.p_value < 0.01
    # The Nemenyi p-values and the critical difference agree on which pairs differ.
    for a in comparison.mean_ranks.index:
        for b in comparison.mean_ranks.index:
            if a != b:
                gap = abs(comparison.mean_ranks[a] - comparison.mean_ranks[b])
                assert (comparison.nemenyi.loc[a, b] < 0.05) == (gap > comparison.critical_difference)
    assert comparison.ranks() == {"best": 1, "middle": 1, "worst": 2}  # CD at 6 tasks and 3 configurations is 1.35
    table = critical_difference_table(comparison)
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert [line.split("|")[2].strip() for line in lines[1:]] == ["`best`", "`middle`", "`worst`"]
    assert "critical difference" in table and "`extra`" in table


def test_friedman_needs_three_tasks_and_reads_no_difference_as_a_tie():
    two_tasks = {t: {"a": 0.5, "b": 0.4, "c": 0.3} for t in "pq"}
    assert friedman_nemenyi(_by_objective(_friedman_results(two_tasks))) is None
    equal = {t: {"a": 0.5, "b": 0.5, "c": 0.5} for t in "pqr"}
    comparison = friedman_nemenyi(_by_objective(_friedman_results(equal)))
    assert comparison.p_value == 1.0 and comparison.ranks() == {"a": 1, "b": 1, "c": 1}
    assert "no configuration differs significantly" in critical_difference_table(comparison)


def test_same_results_same_numbers_and_batches_bound_memory(monkeypatch):
    from pmrl_bench.leaderboard import significance

    rng = np.random.default_rng(5)
    results = [_result(name, s, _hits(rng, np.full(200, p))) for s in range(2) for name, p in (("a", 0.5), ("b", 0.45))]
    rows = _rows(results)
    first, again = pairwise_tests(rows, n_resamples=999), pairwise_tests(rows, n_resamples=999)
    assert first == again  # fixed generators: byte-stable pages
    monkeypatch.setattr(significance, "MAX_ELEMENTS", 200)  # one replicate (or resample) per batch
    small = pairwise_tests(rows, n_resamples=999)
    assert small[0].delta == first[0].delta
    assert small[0].interval == pytest.approx(first[0].interval, abs=0.01)  # other draws, same distribution
    assert small[0].p_value == pytest.approx(first[0].p_value, abs=0.05)


def test_the_normal_limit_of_the_sign_flip_test_agrees_with_monte_carlo_flips():
    """From EXACT_LIMIT queries on, p comes from the flips' normal limit; it must match scipy's Monte Carlo test."""
    from scipy import stats as scipy_stats

    from pmrl_bench.leaderboard.significance import EXACT_LIMIT, sign_flip_p_value

    rng = np.random.default_rng(3)
    for shift in (0.0, 0.01, 0.03, 0.06):
        # R@1 hits averaged over 6 directions: discrete differences with many zeros, as on real pages
        a = rng.binomial(6, 0.45, size=(512,)) / 6
        b = np.clip(a - rng.binomial(1, 0.2, 512) / 6 + rng.binomial(1, 0.2 + shift, 512) / 6, 0, 1)
        d = b - a
        assert len(d) >= EXACT_LIMIT
        monte_carlo = scipy_stats.permutation_test(
            (d,), lambda x, axis=-1: x.mean(axis=axis), permutation_type="samples", vectorized=True,
            n_resamples=9999, rng=np.random.default_rng(0)).pvalue
        assert sign_flip_p_value(d) == pytest.approx(monte_carlo, abs=0.01 + 0.05 * monte_carlo)
