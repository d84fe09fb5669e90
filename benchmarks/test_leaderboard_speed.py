"""The leaderboards' two-stage bootstrap (``leaderboard.stats.bootstrap_over_seeds_and_queries``) for one cell.

Run (opt-in; the test suite skips benchmarks):

    python -m pytest benchmarks/test_leaderboard_speed.py --benchmark-only --benchmark-timer=time.process_time

One cell of a page: three seeds, six directions, 500 test queries, 2000 replicates. Group ``bootstrap MdR``:
the baseline is the straightforward computation, which scores every seed under every slot's query weights (only
the seed each replicate drew is kept) and finds each weighted median by sorting the queries; the other row is the
harness's, which scores each seed on the replicates that drew it and sums the weights by distinct rank value.
Group ``bootstrap R@1``: the same two schedules for R@1. The intervals are checked equal before timing. Two
rank distributions: ``trained`` (ranks clustered near 1, a few dozen distinct values) and ``chance`` (ranks
spread over 1..500, hundreds of distinct values).
"""

from __future__ import annotations

import numpy as np
import pytest

from pmrl_bench.leaderboard import stats

SEEDS, DIRECTIONS, QUERIES = 3, 6, 500
ROUNDS = {"rounds": 5, "warmup_rounds": 1}


def _ranks(kind: str) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    if kind == "trained":
        return [np.minimum(rng.geometric(0.15, size=(DIRECTIONS, QUERIES)), QUERIES) for _ in range(SEEDS)]
    return [rng.integers(1, QUERIES + 1, size=(DIRECTIONS, QUERIES)) for _ in range(SEEDS)]


def _sorted_median_rank(ranks: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted median by sorting the queries and accumulating their weights."""
    n = weights.shape[1]
    lower_pos, upper_pos = (n + 1) // 2, n // 2 + 1
    out = np.zeros(weights.shape[0])
    for row in ranks:
        order = np.argsort(row, kind="stable")
        cumulative = weights[:, order].cumsum(axis=1)
        out += (row[order][np.argmax(cumulative >= lower_pos, axis=1)]
                + row[order][np.argmax(cumulative >= upper_pos, axis=1)]) / 2
    return out / len(ranks)


def _every_seed_in_every_slot(per_seed_ranks: list[np.ndarray], statistic) -> stats.Interval:
    seeds = len(per_seed_ranks)
    n = per_seed_ranks[0].shape[1]
    total = np.zeros(stats.N_BOOTSTRAP)
    drawn_seeds = np.random.default_rng(stats.BOOTSTRAP_SEED).integers(0, seeds, size=(stats.N_BOOTSTRAP, seeds))
    for slot in range(seeds):
        weights = stats._cached_weights(n, slot)
        by_seed = np.stack([statistic(r, weights) for r in per_seed_ranks])
        total += by_seed[drawn_seeds[:, slot], np.arange(stats.N_BOOTSTRAP)]
    return stats._percentiles(total / seeds)


@pytest.mark.parametrize("kind", ["trained", "chance"])
@pytest.mark.parametrize("metric", ["MdR", "R@1"])
@pytest.mark.parametrize("schedule", ["every seed in every slot", "harness"])
def test_bootstrap_cell(benchmark, kind, metric, schedule):
    assert QUERIES * stats.N_BOOTSTRAP <= stats.CACHED_WEIGHTS  # both read the same cached weights
    ranks = _ranks(kind)
    reference_statistic = _sorted_median_rank if metric == "MdR" else stats.recall_at(1)
    reference = lambda: _every_seed_in_every_slot(ranks, reference_statistic)  # noqa: E731
    if schedule == "harness":
        statistic = stats.median_rank if metric == "MdR" else stats.recall_at(1)
        run = lambda: stats.bootstrap_over_seeds_and_queries(ranks, statistic)  # noqa: E731
        assert run() == reference()
    else:
        run = reference
        benchmark.extra_info["role"] = "baseline"
    benchmark.group = f"bootstrap {metric}, {kind} ranks"
    benchmark.pedantic(run, **ROUNDS)
