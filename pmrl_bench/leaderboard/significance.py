"""Paired tests between configurations, the ranks of a table, and a Friedman/Nemenyi test across tasks.

**Ranks** come from the seed-level comparison (:mod:`pmrl_bench.leaderboard.seed_test`; :func:`seed_pairwise`,
:func:`seed_ranks`): the training run is the unit, one mean R@1 per seed, a paired t-test over the seeds both
configurations finished, Holm-corrected over every pair of the table, and a pair decided only when at least 70 % of
the seeds agree in sign. Such ranks are exploratory; the planned family is :mod:`pmrl_bench.leaderboard.verdicts`.

The **query-level** test below is secondary: it takes the trained models as given and asks whether their difference
could come from test-set sampling. Every configuration of a task is scored on the same test queries with the same
seeds, so two configurations are compared **pairwise on the same (seed, query) units**:

- The per-query statistic is the R@k hit (k = 1 by default) averaged over the view's directions; A − B is taken
  per (seed, query) for the seeds both configurations finished.
- **Δ** is the mean of those differences. Its 95% interval is a **paired, seed-stratified two-stage bootstrap**:
  each replicate resamples the seeds and, inside every drawn seed, the queries, with the same indices for A and B
  (so the differences are resampled). It covers training noise (seeds) and test-set sampling (queries).
- The **p-value** is a paired sign-flip permutation test with the query as the unit, on the seed-averaged
  differences: under the null hypothesis A and B are exchangeable on each query. From :data:`EXACT_LIMIT` queries on
  it is taken from the permutation distribution's normal limit (the flipped sum has mean 0 and variance Σd², so
  z = |Σd|/√Σd², with a continuity correction of min |d|, ``scipy.stats.norm``), which at hundreds of queries
  agrees with Monte Carlo flips within
  their own error (a test checks it) and has no resampling floor: ``scipy.stats.permutation_test`` with 9999 flips
  costs 0.5 s per pair, and a page compares up to hundreds of pairs, whose Holm correction needs p-values below
  1/9999. Below that many queries, ``scipy.stats.permutation_test`` (``permutation_type="samples"``) is used.
  The test conditions on the trained models, so it speaks of test-set sampling; the interval is the place to judge
  the spread over seeds.
- p-values of the pairs tested together are **Holm-corrected** (``statsmodels``). They never decide a rank: with few
  seeds, one lucky seed could.

Across three or more tasks, :func:`friedman_nemenyi` runs a Friedman test (``scipy.stats.friedmanchisquare``)
on each configuration's mean R@1 per task, a Nemenyi post-hoc (``scikit_posthocs.posthoc_nemenyi_friedman``) and
reports the critical difference in mean rank.

Written here by hand, because no library does it: the two-stage bootstrap stratified by seed (``scipy.stats.bootstrap``
resamples one level only) and the Nemenyi critical difference (Demšar 2006, one line on top of
``scipy.stats.studentized_range``). Everything is drawn from fixed generators and computed in batches of at most
:data:`MAX_ELEMENTS` numbers, so the same results give the same numbers and large test sets stay within memory.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from pmrl_bench.leaderboard.data import MAIN_VIEW, Run
from pmrl_bench.leaderboard.stats import BOOTSTRAP_SEED, CONFIDENCE, N_BOOTSTRAP, Interval
from pmrl_bench.leaderboard.md import Markdown, code, text
from pmrl_bench.leaderboard.seed_test import BEATS, LOSES, SeedComparison, compare_seeds
from pmrl_bench.leaderboard.seed_test import holm as seed_holm
from pmrl_bench.leaderboard.seed_test import verdict as seed_verdict
from pmrl_bench.leaderboard.tables import markdown

ALPHA = 0.05
N_PERMUTATIONS = 9999
EXACT_LIMIT = 100  # queries: fewer use Monte Carlo sign flips, more the flips' normal limit
PERMUTATION_SEED = 0
MAX_ELEMENTS = 1 << 22  # numbers per batch of bootstrap or permutation draws (32 MiB of float64)


@dataclass(frozen=True)
class PairedTest:
    """A − B on one task. ``delta`` and ``interval`` are fractions (R@1 of 0.42 = 42 %)."""

    a: str
    b: str
    delta: float
    interval: Interval | None
    p_value: float | None  # None: not tested (see ``note``)
    p_corrected: float | None = None  # Holm over the pairs tested together
    seeds: tuple[int, ...] = ()
    queries: int = 0
    paired: bool = True
    note: str = ""

    def significant(self, alpha: float = ALPHA) -> bool:
        p = self.p_corrected if self.p_corrected is not None else self.p_value
        return p is not None and p < alpha and self.delta != 0

    def better(self, alpha: float = ALPHA) -> str | None:
        """The label of the significantly better configuration, or None."""
        if not self.significant(alpha):
            return None
        return self.a if self.delta > 0 else self.b

    def swapped(self) -> PairedTest:
        """The same test as B − A."""
        interval = (-self.interval[1], -self.interval[0]) if self.interval is not None else None
        return replace(self, a=self.b, b=self.a, delta=-self.delta, interval=interval)

    def verdict(self, alpha: float = ALPHA) -> str:
        if self.p_value is None:
            return f"not tested: {self.note}" if self.note else "not tested"
        winner = self.better(alpha)
        return Markdown(f"{code(winner)} better") if winner is not None else "no significant difference"


# -- per-query scores ------------------------------------------------------------------------------------------

def query_scores(run: Run, directions: Sequence[str], view: str = MAIN_VIEW, k: int = 1) -> np.ndarray | None:
    """R@k hit per test query averaged over ``directions``, shape ``(N,)``; None without per-query ranks."""
    ranks = run.ranks.get(view, {})
    if not directions or any(d not in ranks for d in directions):
        return None
    stacked = [ranks[d] for d in directions]
    if len({len(r) for r in stacked}) != 1 or not len(stacked[0]):
        return None
    return (np.stack(stacked) <= k).mean(axis=0, dtype=np.float64)


def same_test_queries(a: Run, b: Run) -> bool:
    """Whether two runs were evaluated on the same test instances in the same order.

    The data fingerprint decides when both results have one; older results fall back on equal task parameters.
    """
    fa, fb = a.result.data_fingerprint, b.result.data_fingerprint
    if fa is not None and fb is not None:
        return fa == fb
    return a.result.params.get("task") == b.result.params.get("task")


def _ok_by_seed(runs: Sequence[Run]) -> dict[int, Run]:
    out: dict[int, Run] = {}
    for run in runs:
        if run.status == "ok":
            out.setdefault(run.seed, run)
    return out


def _common_directions(runs: Sequence[Run], view: str) -> list[str]:
    sets = [set(r.ranks.get(view, {})) for r in runs]
    return sorted(set.intersection(*sets)) if sets else []


def _mean_recall(run: Run, view: str, k: int) -> float | None:
    scores = run.views.get(view, {})
    values = [s[f"R@{k}"] for s in scores.values() if f"R@{k}" in s]
    return float(np.mean(values)) if values else None


def seed_scores(runs: Sequence[Run], view: str = MAIN_VIEW, k: int = 1) -> dict[int, float]:
    """``{seed: mean R@k over the view's directions}`` of the runs that finished ok (the first run of a seed): the
    per-seed values the seed-level tests of :mod:`pmrl_bench.leaderboard.seed_test` compare."""
    out: dict[int, float] = {}
    for seed, run in _ok_by_seed(runs).items():
        if (score := _mean_recall(run, view, k)) is not None:
            out[seed] = score
    return out


# -- resampling ------------------------------------------------------------------------------------------------

def two_stage_replicates(per_seed: np.ndarray, stream: int = 0) -> np.ndarray:
    """``(N_BOOTSTRAP,)`` means of a two-stage bootstrap of ``per_seed`` ``(seeds, queries)``.

    Each replicate draws the seeds with replacement and, for every drawn seed, the queries with replacement.
    ``stream`` picks an independent fixed generator (two sides of an unpaired comparison use two streams).
    """
    per_seed = np.asarray(per_seed, dtype=np.float64)
    seeds, n = per_seed.shape
    rng = np.random.default_rng([BOOTSTRAP_SEED, stream, seeds, n])
    drawn_seeds = rng.integers(0, seeds, size=(N_BOOTSTRAP, seeds))
    total = np.zeros(N_BOOTSTRAP)
    batch = max(1, MAX_ELEMENTS // n)
    for start in range(0, N_BOOTSTRAP, batch):
        stop = min(start + batch, N_BOOTSTRAP)
        for slot in range(seeds):
            queries = rng.integers(0, n, size=(stop - start, n))
            total[start:stop] += per_seed[drawn_seeds[start:stop, slot, None], queries].mean(axis=1)
    return total / seeds


def _interval(replicates: np.ndarray) -> Interval:
    tail = (1 - CONFIDENCE) / 2 * 100
    lo, hi = np.percentile(replicates, [tail, 100 - tail])
    return float(lo), float(hi)


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def sign_flip_p_value(differences: np.ndarray, n_resamples: int = N_PERMUTATIONS) -> float:
    """Two-sided p-value of a paired sign-flip test on per-query differences (exact when 2**N <= n_resamples)."""
    differences = np.asarray(differences, dtype=np.float64)
    if not np.any(differences):
        return 1.0  # every flip gives the same statistic
    if len(differences) >= EXACT_LIMIT:
        # Continuity correction: one flip moves the sum by 2|d_i|, so half the smallest such step is min |d_i|.
        smallest = float(np.abs(differences[differences != 0]).min())
        z = max(0.0, abs(float(differences.sum())) - smallest) / math.sqrt(float((differences**2).sum()))
        return float(min(1.0, 2 * stats.norm.sf(z)))
    result = stats.permutation_test(
        (differences,), _mean, permutation_type="samples", vectorized=True, n_resamples=n_resamples,
        batch=max(1, MAX_ELEMENTS // len(differences)), rng=np.random.default_rng(PERMUTATION_SEED),
    )
    return float(min(1.0, result.pvalue))


# -- one pair --------------------------------------------------------------------------------------------------

def paired_test(runs_a: Sequence[Run], runs_b: Sequence[Run], a: str = "A", b: str = "B", view: str = MAIN_VIEW,
                k: int = 1, n_resamples: int = N_PERMUTATIONS, interval: bool = True) -> PairedTest:
    """Compare two configurations on the seeds both finished (``ok``), A − B of the per-query R@k hit.

    ``interval=False`` skips the bootstrap interval (ranks need the p-value alone; the interval is the costly part).
    Seeds present on one side only are left out (and named in ``note``). When the two sides were not evaluated
    on the same test queries, or store no per-query ranks, the comparison is unpaired: Δ of the means with an
    interval from independent bootstraps of each side (when ranks exist), and no p-value.
    """
    by_seed_a, by_seed_b = _ok_by_seed(runs_a), _ok_by_seed(runs_b)
    seeds = tuple(sorted(set(by_seed_a) & set(by_seed_b)))
    only = [f"seed {s} only in {label}" for label, mine, other in ((a, by_seed_a, by_seed_b), (b, by_seed_b, by_seed_a))
            for s in sorted(set(mine) - set(other))]
    seed_note = "; ".join(only)
    if not seeds:
        return _unpaired(list(by_seed_a.values()), list(by_seed_b.values()), a, b, view, k,
                         "no seed finished on both sides" + (f" ({seed_note})" if seed_note else ""))
    pairs = [(by_seed_a[s], by_seed_b[s]) for s in seeds]
    directions = _common_directions([r for pair in pairs for r in pair], view)
    scores = [(query_scores(ra, directions, view, k), query_scores(rb, directions, view, k)) for ra, rb in pairs]
    if any(sa is None or sb is None for sa, sb in scores):
        return _unpaired(list(by_seed_a.values()), list(by_seed_b.values()), a, b, view, k, "no per-query ranks")
    lengths = {len(x) for pair in scores for x in pair}
    if len(lengths) != 1 or not all(same_test_queries(ra, rb) for ra, rb in pairs) or not all(
        same_test_queries(pairs[0][0], ra) for ra, _ in pairs
    ):
        return _unpaired(list(by_seed_a.values()), list(by_seed_b.values()), a, b, view, k, "different test queries")
    differences = np.stack([sa - sb for sa, sb in scores])  # (seeds, queries)
    return PairedTest(
        a=a, b=b, delta=float(differences.mean()),
        interval=_interval(two_stage_replicates(differences)) if interval else None,
        p_value=sign_flip_p_value(differences.mean(axis=0), n_resamples), seeds=seeds,
        queries=differences.shape[1], paired=True, note=seed_note,
    )


def _unpaired(runs_a: Sequence[Run], runs_b: Sequence[Run], a: str, b: str, view: str, k: int, why: str) -> PairedTest:
    sides = []
    for runs in (runs_a, runs_b):
        directions = _common_directions(runs, view)
        scores = [query_scores(r, directions, view, k) for r in runs]
        sides.append(np.stack(scores) if scores and all(s is not None for s in scores)
                     and len({len(s) for s in scores}) == 1 else None)
    if sides[0] is not None and sides[1] is not None:
        delta = float(sides[0].mean() - sides[1].mean())
        interval = _interval(two_stage_replicates(sides[0], 1) - two_stage_replicates(sides[1], 2))
        return PairedTest(a, b, delta, interval, None, paired=False, note=f"{why}: unpaired interval, no test")
    means = [[m for m in (_mean_recall(r, view, k) for r in runs) if m is not None] for runs in (runs_a, runs_b)]
    delta = float(np.mean(means[0]) - np.mean(means[1])) if means[0] and means[1] else math.nan
    return PairedTest(a, b, delta, None, None, paired=False, note=why)


# -- all pairs of a task ---------------------------------------------------------------------------------------

def holm(tests: Sequence[PairedTest]) -> list[PairedTest]:
    """The tests with ``p_corrected`` filled by Holm's step-down correction over those that have a p-value."""
    from statsmodels.stats.multitest import multipletests

    tested = [i for i, t in enumerate(tests) if t.p_value is not None]
    out = list(tests)
    if tested:
        _, corrected, _, _ = multipletests([tests[i].p_value for i in tested], alpha=ALPHA, method="holm")
        for i, p in zip(tested, corrected):
            out[i] = replace(tests[i], p_corrected=float(p))
    return out


def pairwise_tests(rows: Mapping[str, Sequence[Run]], view: str = MAIN_VIEW, k: int = 1,
                   n_resamples: int = N_PERMUTATIONS, intervals: bool = True) -> list[PairedTest]:
    """Every pair of configurations (``{label: runs}`` of one task), Holm-corrected together.

    Each pair is oriented so that Δ ≥ 0 (A is the one ahead); pairs are sorted by label. ``intervals=False``: p-values
    and Δ only (enough for ranks).
    """
    tests = [paired_test(rows[a], rows[b], a, b, view, k, n_resamples, intervals)
             for a, b in itertools.combinations(sorted(rows), 2)]
    tests = [t.swapped() if t.delta < 0 else t for t in tests]
    return holm(tests)


def seed_pairwise(rows: Mapping[str, Sequence[Run]], view: str = MAIN_VIEW, k: int = 1) -> list[SeedComparison]:
    """Every pair of configurations (``{label: runs}`` of one table) compared over seeds on mean R@k
    (:func:`~pmrl_bench.leaderboard.seed_test.compare_seeds`), oriented so that A is ahead, sorted by label and
    Holm-corrected together."""
    scores = {label: seed_scores(runs, view, k) for label, runs in rows.items()}
    tests = [compare_seeds(scores[a], scores[b], a, b) for a, b in itertools.combinations(sorted(rows), 2)]
    return seed_holm([t.swapped() if t.mean < 0 else t for t in tests])


def seed_ranks(tests: Sequence[SeedComparison], labels: Sequence[str], alpha: float = ALPHA) -> dict[str, int]:
    """Rank = 1 + the number of configurations that beat this one by the seed-level verdict (Holm-corrected p < α
    and at least 70 % of the seeds agreeing in sign). Configurations nothing beats share rank 1."""
    beaten_by: dict[str, set[str]] = {label: set() for label in labels}
    for t in tests:
        word = seed_verdict(t, alpha)
        winner, loser = (t.a, t.b) if word == BEATS else (t.b, t.a) if word == LOSES else (None, None)
        if winner is not None and loser in beaten_by:
            beaten_by[loser].add(winner)
    return {label: 1 + len(beaten_by[label]) for label in labels}


def _percent(value: float) -> str:
    return "–" if math.isnan(value) else f"{value * 100:+.1f}"


def format_delta(test: PairedTest) -> str:
    """``+3.2 [+1.0, +5.1]`` in percentage points."""
    text = _percent(test.delta)
    if test.interval is not None:
        text += f" [{_percent(test.interval[0])}, {_percent(test.interval[1])}]"
    return Markdown(text)  # numbers and brackets made here: nothing to escape


def format_p(p: float | None) -> str:
    if p is None:
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


# -- across tasks ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RankComparison:
    """Friedman test over tasks (blocks) and configurations (treatments), with the Nemenyi post-hoc."""

    scores: pd.DataFrame  # tasks x configurations: mean R@k over ok seeds and directions
    mean_ranks: pd.Series  # per configuration, 1 = best
    statistic: float
    p_value: float
    nemenyi: pd.DataFrame  # configurations x configurations: p-values
    critical_difference: float  # in mean rank, at ``alpha``
    alpha: float
    left_out: tuple[str, ...]  # configurations missing from some task
    k: int = 1

    def ranks(self) -> dict[str, int]:
        """1 + the configurations significantly better (Nemenyi p < α, lower mean rank); all 1 when Friedman
        does not reject (the post-hoc is read only after a significant omnibus test)."""
        out = {}
        for c in self.mean_ranks.index:
            better = 0
            if self.p_value < self.alpha:
                better = sum(1 for o in self.mean_ranks.index
                             if o != c and self.mean_ranks[o] < self.mean_ranks[c]
                             and self.nemenyi.loc[c, o] < self.alpha)
            out[str(c)] = 1 + better
        return out


def task_scores(runs_by_task: Mapping[str, Sequence[Run]], view: str = MAIN_VIEW, k: int = 1) -> pd.DataFrame:
    """Tasks x configurations: mean over ok seeds of R@k averaged over the view's directions (NaN where absent)."""
    table: dict[str, dict[str, float]] = {}
    for task, runs in runs_by_task.items():
        per_label: dict[str, list[float]] = {}
        for run in runs:
            if run.status == "ok" and (m := _mean_recall(run, view, k)) is not None:
                per_label.setdefault(run.label, []).append(m)
        table[task] = {label: float(np.mean(v)) for label, v in per_label.items()}
    return pd.DataFrame.from_dict(table, orient="index").sort_index().sort_index(axis=1)


def friedman_nemenyi(runs_by_task: Mapping[str, Sequence[Run]], view: str = MAIN_VIEW, k: int = 1,
                     alpha: float = ALPHA) -> RankComparison | None:
    """Friedman + Nemenyi over the configurations present on every task; None with fewer than three tasks or
    fewer than three such configurations (the Friedman test needs both)."""
    import scikit_posthocs  # imports matplotlib and seaborn: only when asked

    scores = task_scores(runs_by_task, view, k)
    complete = scores.dropna(axis=1)
    left_out = tuple(c for c in scores.columns if c not in complete.columns)
    if complete.shape[0] < 3 or complete.shape[1] < 3:
        return None
    values = complete.to_numpy()
    ranks = np.apply_along_axis(stats.rankdata, 1, -values)  # 1 = best on each task, ties averaged
    mean_ranks = pd.Series(ranks.mean(axis=0), index=complete.columns)
    if np.all(values == values[:, :1]):  # every configuration equal on every task: nothing to test
        statistic, p_value = 0.0, 1.0
    else:
        statistic, p_value = (float(x) for x in stats.friedmanchisquare(*values.T))
    nemenyi = scikit_posthocs.posthoc_nemenyi_friedman(values)
    nemenyi.index = nemenyi.columns = complete.columns
    blocks, groups = values.shape
    q = stats.studentized_range.ppf(1 - alpha, groups, np.inf) / math.sqrt(2)
    cd = float(q * math.sqrt(groups * (groups + 1) / (6 * blocks)))
    return RankComparison(complete, mean_ranks, statistic, p_value, nemenyi, cd, alpha, left_out, k)


def critical_difference_table(comparison: RankComparison) -> str:
    """Markdown for the overview: a sentence with the Friedman test and the critical difference, then one row
    per configuration (rank, mean rank, Nemenyi group letters, score per task)."""
    from scikit_posthocs import compact_letter_display

    tasks, configs = comparison.scores.shape
    ranks = comparison.ranks()
    significant = comparison.p_value < comparison.alpha
    groups = (compact_letter_display(comparison.nemenyi, alpha=comparison.alpha) if significant
              else pd.Series("a", index=comparison.mean_ranks.index))
    order = sorted(comparison.mean_ranks.index, key=lambda c: (comparison.mean_ranks[c], c))
    body = [
        [str(ranks[c]), code(c), f"{comparison.mean_ranks[c]:.2f}", str(groups[c]).strip(),
         *(f"{comparison.scores.loc[t, c] * 100:.1f}" for t in comparison.scores.index)]
        for c in order
    ]
    headers = ["rank", "configuration", "mean rank", "group",
               *(f"{t} R@{comparison.k} %" for t in comparison.scores.index)]
    verdict = "configurations differ" if significant else "no configuration differs significantly"
    note = (
        f"Friedman test over {tasks} tasks and {configs} configurations: χ² = {comparison.statistic:.2f}, "
        f"p = {text(format_p(comparison.p_value))} ({verdict} at α = {comparison.alpha}). Nemenyi critical difference: "
        f"{comparison.critical_difference:.2f} in mean rank (1 = best); configurations sharing a group letter do not "
        "differ significantly; rank = 1 + the configurations significantly better."
    )
    if comparison.left_out:
        note += " Left out (not on every task): " + ", ".join(code(c) for c in comparison.left_out) + "."
    return note + "\n\n" + markdown(body, headers)
