"""The two-stage bootstrap's statistics against plain per-replicate computations."""

from __future__ import annotations

import numpy as np
import pytest

from pmrl_bench.leaderboard import stats


def _weighted_median_rank(ranks: np.ndarray, counts: np.ndarray) -> float:
    """MdR of one replicate the plain way: repeat each query's ranks as often as it was drawn, take the median."""
    return float(np.mean([np.median(np.repeat(row, counts.astype(int))) for row in ranks]))


@pytest.mark.parametrize("n", [7, 40, 41])  # odd and even query counts
@pytest.mark.parametrize("spread", [3, 12, 10_000])  # many ties, clustered ranks, nearly all distinct
def test_median_rank_equals_the_median_of_each_resampled_split(n, spread):
    rng = np.random.default_rng([n, spread])
    ranks = rng.integers(1, spread + 1, size=(3, n))
    weights = stats._draw_weights(rng, 25, n)
    expected = [_weighted_median_rank(ranks, weights[b]) for b in range(len(weights))]
    assert stats.median_rank(ranks, weights).tolist() == expected


@pytest.fixture
def few_replicates(monkeypatch):
    """60 replicates instead of 2000, and no cached weights drawn for another count, before or after."""
    monkeypatch.setattr(stats, "N_BOOTSTRAP", 60)
    stats._cached_weights.cache_clear()
    yield
    stats._cached_weights.cache_clear()


@pytest.mark.parametrize("statistic", [stats.median_rank, stats.recall_at(1)], ids=["MdR", "R@1"])
@pytest.mark.parametrize("seeds", [1, 3, 5])
def test_two_stage_bootstrap_equals_its_definition_replicate_by_replicate(few_replicates, statistic, seeds):
    """Each replicate: for every seed slot, the seed drawn for it, scored under that slot's query weights; the
    replicate is the mean over slots. The interval is their percentiles."""
    n = 33
    per_seed = [np.random.default_rng(s).integers(1, 15, size=(2, n)) for s in range(seeds)]
    drawn = np.random.default_rng(stats.BOOTSTRAP_SEED).integers(0, seeds, size=(stats.N_BOOTSTRAP, seeds))
    slot_weights = [stats._cached_weights(n, slot) for slot in range(seeds)]
    replicates = [
        np.mean([statistic(per_seed[drawn[b, slot]], slot_weights[slot][b : b + 1])[0] for slot in range(seeds)])
        for b in range(stats.N_BOOTSTRAP)
    ]
    expected = tuple(float(v) for v in np.percentile(replicates, [2.5, 97.5]))
    assert stats.bootstrap_over_seeds_and_queries(per_seed, statistic) == pytest.approx(expected, rel=1e-12)
