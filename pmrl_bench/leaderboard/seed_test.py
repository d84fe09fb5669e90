"""Comparisons whose unit of inference is the training run: A − B of a score per seed, tested over the seeds.

Two configurations trained with the same seeds give one difference per seed (A's score minus B's, the seeds both
finished ``ok``). The **primary test is a paired Student t-test over those differences**
(``scipy.stats.ttest_1samp``), with a 95 % t-interval of their mean. Beside it stands the **exact two-sided sign-flip
p** over the seeds (``scipy.stats.permutation_test``, every one of the 2ⁿ sign patterns), which assumes nothing about
the differences' distribution.

Why the t-test, not the exact sign flip, is the primary test: with 10 seeds the sign flip's smallest possible p is
2/1024 ≈ 0.002, which cannot survive a Holm correction over a family of 100–200 planned comparisons, so no
difference, however large and consistent, could ever be called. The t-test uses the spread of the differences, has
the training run as its unit (one lucky seed cannot make a difference significant: it widens the spread), and its
normality assumption is guarded twice: a verdict also needs at least 70 % of the seeds to agree in sign with the
mean difference (bimodal outcomes, where a few seeds carry the mean, fail it), and the sign-flip p is reported
beside it.

A comparison that finds nothing says how large a difference it could have found: ``min_detectable`` is the mean
difference that would have reached significance at the Bonferroni level α/m of its family of m comparisons, given the
observed spread, t₁₋α/(2m), n−1 · sd / √n (Bonferroni is Holm's most demanding step, so this errs on the large side).
Fewer than :data:`MIN_SEEDS` paired seeds: no test, verdict ``"too few seeds"``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

ALPHA = 0.05
CONFIDENCE = 0.95
MIN_SEEDS = 3  # paired seeds a test needs
MIN_AGREE = 0.7  # share of seeds whose difference must have the sign of the mean for a verdict
BEATS, LOSES, NO_DIFFERENCE, TOO_FEW = "beats", "loses to", "no detectable difference", "too few seeds"


@dataclass(frozen=True)
class SeedComparison:
    """A − B over the seeds both configurations finished. Differences are fractions (0.42 = 42 % R@1)."""

    a: str  # row label of configuration A
    b: str
    seeds: tuple[int, ...]  # seeds both finished ok, ascending
    differences: tuple[float, ...]  # A − B per seed, in the order of ``seeds``
    mean: float  # mean difference (NaN without a common seed)
    interval: tuple[float, float] | None  # 95 % Student-t interval of the mean (None: fewer than 2 seeds)
    p_value: float | None  # two-sided paired t-test over seeds (None: fewer than MIN_SEEDS)
    p_sign_flip: float | None  # exact two-sided sign-flip p over seeds (None: fewer than MIN_SEEDS)
    agree: int  # seeds whose difference has the sign of the mean (0 when the mean is 0)
    min_detectable: float | None  # smallest |mean| this spread and seed count could have detected
    p_adjusted: float | None = None  # Holm over the family it was tested in

    @property
    def n(self) -> int:
        return len(self.seeds)

    def swapped(self) -> SeedComparison:
        """The same comparison as B − A."""
        interval = (-self.interval[1], -self.interval[0]) if self.interval is not None else None
        return replace(self, a=self.b, b=self.a, differences=tuple(-d for d in self.differences), mean=-self.mean,
                       interval=interval)


def _mean_statistic(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def sign_flip_p(differences: Sequence[float]) -> float:
    """Exact two-sided p of the sign-flip test on the mean (all 2ⁿ sign patterns)."""
    d = np.asarray(differences, dtype=np.float64)
    if not np.any(d):
        return 1.0
    result = stats.permutation_test((d,), _mean_statistic, permutation_type="samples", vectorized=True,
                                    n_resamples=np.inf, alternative="two-sided")
    return float(min(1.0, result.pvalue))


def t_p_value(differences: Sequence[float]) -> float:
    """Two-sided p of the one-sample t-test of the differences against 0; a zero spread gives 0 (a nonzero mean,
    every seed alike) or 1 (every difference 0) without scipy's division warnings."""
    d = np.asarray(differences, dtype=np.float64)
    if float(np.std(d)) == 0.0:
        return 1.0 if float(d[0]) == 0.0 else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a spread at the edge of float precision
        p = float(stats.ttest_1samp(d, 0.0).pvalue)
    return 1.0 if math.isnan(p) else p


def min_detectable(differences: Sequence[float], family_size: int = 1, alpha: float = ALPHA) -> float | None:
    """t₁₋α/(2m), n−1 · sd / √n: the mean difference significant at the Bonferroni level α/m (None: too few seeds)."""
    n = len(differences)
    if n < MIN_SEEDS:
        return None
    sd = float(np.std(np.asarray(differences, dtype=np.float64), ddof=1))
    q = float(stats.t.ppf(1 - alpha / (2 * max(1, family_size)), n - 1))
    return q * sd / math.sqrt(n)


def _interval(d: np.ndarray) -> tuple[float, float] | None:
    if len(d) < 2:
        return None
    mean, half = float(d.mean()), 0.0
    sd = float(np.std(d, ddof=1))
    if sd > 0:
        half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(d) - 1)) * sd / math.sqrt(len(d))
    return mean - half, mean + half


def compare_seeds(a: Mapping[int, float], b: Mapping[int, float], a_label: str, b_label: str,
                  family_size: int = 1) -> SeedComparison:
    """A − B over the seeds both map (``{seed: score}`` of the runs that finished ok). ``family_size``: the m of
    ``min_detectable`` (:func:`holm` sets it to the family it corrects over)."""
    seeds = tuple(sorted(set(a) & set(b)))
    d = np.array([float(a[s]) - float(b[s]) for s in seeds], dtype=np.float64)
    mean = float(d.mean()) if len(d) else math.nan
    tested = len(d) >= MIN_SEEDS
    agree = int(np.sum(np.sign(d) == np.sign(mean))) if len(d) and mean != 0 else 0
    return SeedComparison(
        a=a_label, b=b_label, seeds=seeds, differences=tuple(float(x) for x in d), mean=mean,
        interval=_interval(d), p_value=t_p_value(d) if tested else None,
        p_sign_flip=sign_flip_p(d) if tested else None, agree=agree,
        min_detectable=min_detectable(d, family_size),
    )


def holm(comparisons: Sequence[SeedComparison], alpha: float = ALPHA) -> list[SeedComparison]:
    """The comparisons with ``p_adjusted`` (Holm, ``statsmodels``) over those that were tested, and
    ``min_detectable`` at the Bonferroni level of that family; untested ones are returned as they are."""
    from statsmodels.stats.multitest import multipletests

    tested = [i for i, c in enumerate(comparisons) if c.p_value is not None]
    out = list(comparisons)
    if not tested:
        return out
    _, adjusted, _, _ = multipletests([comparisons[i].p_value for i in tested], alpha=alpha, method="holm")
    for i, p in zip(tested, adjusted):
        c = comparisons[i]
        out[i] = replace(c, p_adjusted=float(p), min_detectable=min_detectable(c.differences, len(tested), alpha))
    return out


def verdict(c: SeedComparison, alpha: float = ALPHA, min_agree: float = MIN_AGREE) -> str:
    """``"beats"`` / ``"loses to"`` (A relative to B) when the Holm-adjusted p (the raw p outside a family) is below
    α and at least ``min_agree`` of the seeds agree in sign with the mean; else ``"no detectable difference"``, or
    ``"too few seeds"`` when there was no test."""
    if c.p_value is None:
        return TOO_FEW
    p = c.p_adjusted if c.p_adjusted is not None else c.p_value
    if p < alpha and c.mean != 0 and c.agree / c.n >= min_agree:
        return BEATS if c.mean > 0 else LOSES
    return NO_DIFFERENCE
