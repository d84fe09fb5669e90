"""Statistics behind the leaderboards: mean/std/CV over seeds, 95% bootstrap intervals, tie-aware ranks.

Two bootstrap schemes, and each table says which it used:

- **Two-stage bootstrap over seeds and test queries** (retrieval, when per-query ranks are stored): each
  replicate resamples the seeds with replacement and, inside every drawn seed, the test queries with
  replacement; the statistic is the mean over the drawn seeds. It carries both sources of noise, training
  (seed) and test-set sampling, so intervals stay honest with only three seeds.
  Used up to :data:`MAX_BOOTSTRAP_QUERIES` queries per direction; beyond that the query-sampling noise is
  below a point of R@1 (95% half-width at most 0.7 points) and the time would grow with the queries, so such
  views take the seed bootstrap.
- **Bootstrap over seeds** (everything else): the seed is the unit. With n seeds the percentile interval
  spans roughly the range of the per-seed values; with one seed there is no interval.

Replicates come from a fixed generator, so the same results always give the same intervals. The query weights
of the replicates are drawn and used in blocks of at most :data:`WEIGHT_BLOCK` entries, so memory stays bounded
(tens of MiB) whatever the number of queries; the blocks are consecutive draws of one generator, so the
intervals do not depend on the block size.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np

N_BOOTSTRAP = 2000
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0
# More queries per direction than this: the interval is the bootstrap over seeds (stated on the page).
MAX_BOOTSTRAP_QUERIES = 20_000
# Replicates x queries entries of weights drawn at once (float32 weights plus int64 draws: ~80 MiB at the peak).
WEIGHT_BLOCK = 2**22
# Weights of up to this many entries (32 MiB) are kept for reuse: every cell of a page shares its replicates.
CACHED_WEIGHTS = 2**23

Interval = tuple[float, float]


def mean_std_cv(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean, sample standard deviation (0 for one value) and coefficient of variation std/|mean| (NaN at mean 0)."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if not len(x):
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    cv = std / abs(mean) if mean != 0 else float("nan")
    return mean, std, cv


def _percentiles(replicates: np.ndarray) -> Interval:
    tail = (1 - CONFIDENCE) / 2 * 100
    lo, hi = np.percentile(replicates, [tail, 100 - tail])
    return float(lo), float(hi)


def bootstrap_over_seeds(values: Sequence[float]) -> Interval | None:
    """Percentile interval of the mean over seeds; None with fewer than two seeds."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return None
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = rng.integers(0, len(x), size=(N_BOOTSTRAP, len(x)))
    return _percentiles(x[draws].mean(axis=1))


# A statistic of one seed's per-query ranks (directions x queries) under query weights (replicates x queries):
# returns one value per replicate.
RankStatistic = Callable[[np.ndarray, np.ndarray], np.ndarray]


def recall_at(k: int) -> RankStatistic:
    """R@k averaged over directions, under resampling weights."""

    def statistic(ranks: np.ndarray, weights: np.ndarray) -> np.ndarray:
        hits = (ranks <= k).astype(weights.dtype)  # (directions, N)
        # einsum, not BLAS: exact integer counts in float32, no thread pool (slow on a loaded machine).
        return np.einsum("bn,dn->bd", weights, hits).mean(axis=1, dtype=np.float64) / weights.shape[1]

    return statistic


def median_rank(ranks: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Median rank averaged over directions, under resampling weights (mean of the two middles, as MdR)."""
    from scipy import sparse  # scipy.sparse takes a moment to import; only the MdR cells need it

    replicates, n = weights.shape
    lower_pos, upper_pos = (n + 1) // 2, n // 2 + 1  # 1-based positions of the middle value(s)
    out = np.zeros(replicates)
    for row in ranks:
        # The weight each replicate gives to each distinct rank value, then their running total: a few dozen
        # values where the queries' ranks cluster, instead of n sorted queries. The weights are whole counts
        # far below 2**24, so these float32 sums are exact in any order.
        values, group = np.unique(row, return_inverse=True)
        onehot = sparse.csr_array((np.ones(n, dtype=weights.dtype), (np.arange(n), group)), shape=(n, len(values)))
        cumulative = np.cumsum(np.asarray(weights @ onehot), axis=1)
        lower = values[np.argmax(cumulative >= lower_pos, axis=1)]
        upper = values[np.argmax(cumulative >= upper_pos, axis=1)]
        out += (lower + upper) / 2
    return out / len(ranks)


def _draw_weights(rng: np.random.Generator, replicates: int, n: int) -> np.ndarray:
    """``(replicates, n)``: how often each of n queries is drawn in each replicate (n draws with replacement)."""
    draws = rng.integers(0, n, size=(replicates, n)) + n * np.arange(replicates)[:, None]
    return np.bincount(draws.ravel(), minlength=replicates * n).reshape(replicates, n).astype(np.float32)


def _weight_blocks(n: int, slot: int) -> Iterator[np.ndarray]:
    """The ``(N_BOOTSTRAP, n)`` resampling weights of one seed slot, in consecutive blocks of replicates.

    Drawn from a generator fixed by (n, slot): the same replicates for every cell of a page. Small enough
    matrices come whole from a cache; larger ones are drawn block by block, each dropped once used.
    """
    if N_BOOTSTRAP * n <= CACHED_WEIGHTS:
        yield _cached_weights(n, slot)
        return
    rng = np.random.default_rng([BOOTSTRAP_SEED, n, slot])
    rows = max(1, WEIGHT_BLOCK // n)
    for start in range(0, N_BOOTSTRAP, rows):
        yield _draw_weights(rng, min(rows, N_BOOTSTRAP - start), n)


@functools.lru_cache(maxsize=4)
def _cached_weights(n: int, slot: int) -> np.ndarray:
    rng = np.random.default_rng([BOOTSTRAP_SEED, n, slot])
    rows = max(1, WEIGHT_BLOCK // n)
    weights = np.concatenate([_draw_weights(rng, min(rows, N_BOOTSTRAP - start), n)
                              for start in range(0, N_BOOTSTRAP, rows)])
    weights.flags.writeable = False
    return weights


def bootstrap_over_seeds_and_queries(per_seed_ranks: Sequence[np.ndarray], statistic: RankStatistic) -> Interval | None:
    """Two-stage percentile interval of the mean over seeds of ``statistic``.

    ``per_seed_ranks``: one ``(directions, N)`` integer array per seed, queries in the same order in every seed.
    None when there is nothing to resample, the seeds rank different numbers of queries, or more than
    :data:`MAX_BOOTSTRAP_QUERIES` (the caller then bootstraps over seeds).
    """
    if not per_seed_ranks:
        return None
    n = per_seed_ranks[0].shape[1]
    if n == 0 or n > MAX_BOOTSTRAP_QUERIES or any(r.shape != per_seed_ranks[0].shape for r in per_seed_ranks):
        return None
    seeds = len(per_seed_ranks)
    total = np.zeros(N_BOOTSTRAP)
    drawn_seeds = np.random.default_rng(BOOTSTRAP_SEED).integers(0, seeds, size=(N_BOOTSTRAP, seeds))
    for slot in range(seeds):
        start = 0
        for weights in _weight_blocks(n, slot):
            drawn = drawn_seeds[start : start + weights.shape[0], slot]
            # Each replicate reads one seed in this slot: a seed's statistic is computed on the replicates that
            # drew it, not on all of them (a third of the work with three seeds; the same values).
            for seed, ranks in enumerate(per_seed_ranks):
                rows = np.flatnonzero(drawn == seed)
                if len(rows):
                    total[start + rows] += statistic(ranks, weights[rows])
            start += weights.shape[0]
    return _percentiles(total / seeds)


def interval_ranks(intervals: Mapping[str, Interval | None], means: Mapping[str, float],
                   higher_is_better: bool) -> dict[str, int]:
    """Rank = 1 + the number of rows whose whole interval lies beyond this row's (strictly better).

    Rows that no other row beats in this sense share rank 1: they are tied for best. A row without an
    interval is treated as the point interval at its mean.
    """
    bounds = {}
    for row, mean in means.items():
        if np.isnan(mean):
            continue
        interval = intervals.get(row) or (mean, mean)
        bounds[row] = interval
    ranks = {}
    for row, (lo, hi) in bounds.items():
        if higher_is_better:
            better = sum(1 for other, (olo, _) in bounds.items() if other != row and olo > hi)
        else:
            better = sum(1 for other, (_, ohi) in bounds.items() if other != row and ohi < lo)
        ranks[row] = 1 + better
    return ranks
