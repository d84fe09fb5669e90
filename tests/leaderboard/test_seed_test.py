"""The seed-level comparison: t p over seeds as scipy gives it, the exact sign-flip p, agreement, the 70 % rule,
Holm over a family, the smallest detectable difference, and degenerate inputs without warnings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from pmrl_bench.leaderboard.seed_test import SeedComparison, compare_seeds, holm, verdict


def _pair(differences: list[float], base: float = 0.4) -> SeedComparison:
    b = {seed: base for seed in range(len(differences))}
    a = {seed: base + d for seed, d in enumerate(differences)}
    return compare_seeds(a, b, "A", "B")


def test_known_differences_give_scipys_t_p_interval_and_agreement():
    d = [0.03, 0.01, 0.04, -0.01, 0.02, 0.05, 0.02, 0.03, 0.00, 0.01]
    c = _pair(d)
    assert c.seeds == tuple(range(10)) and c.differences == pytest.approx(d)
    assert c.mean == pytest.approx(np.mean(d))
    assert c.p_value == pytest.approx(stats.ttest_1samp(d, 0.0).pvalue)
    half = stats.t.ppf(0.975, 9) * np.std(d, ddof=1) / np.sqrt(10)
    assert c.interval == pytest.approx((np.mean(d) - half, np.mean(d) + half))
    assert c.agree == 8  # one negative, one zero
    assert c.min_detectable == pytest.approx(stats.t.ppf(0.975, 9) * np.std(d, ddof=1) / np.sqrt(10))


def test_sign_flip_p_is_exact_over_seeds():
    c = _pair([0.01 * (i + 1) for i in range(10)])
    assert c.p_sign_flip == pytest.approx(2 / 1024)
    assert c.agree == 10 and verdict(c) == "beats"
    assert verdict(c.swapped()) == "loses to" and c.swapped().mean == pytest.approx(-c.mean)


def test_only_common_ok_seeds_count_and_fewer_than_three_are_not_tested():
    c = compare_seeds({0: 0.5, 1: 0.6, 3: 0.7}, {1: 0.4, 2: 0.3, 3: 0.2}, "A", "B")
    assert c.seeds == (1, 3) and c.differences == pytest.approx((0.2, 0.5))
    assert c.p_value is None and c.p_sign_flip is None and c.min_detectable is None
    assert c.interval is not None  # two seeds give an interval, not a test
    assert verdict(c) == "too few seeds"
    empty = compare_seeds({}, {0: 0.1}, "A", "B")
    assert empty.seeds == () and empty.interval is None and verdict(empty) == "too few seeds"


def test_a_significant_mean_that_most_seeds_disagree_with_is_no_detectable_difference():
    # Bimodal outcomes: 6 of 10 seeds tiny and negative, 4 large and positive; the t-test alone would call it.
    d = [0.30, 0.31, 0.29, 0.30, -0.001, -0.002, -0.001, -0.002, -0.001, -0.002]
    c = _pair(d)
    assert c.mean > 0 and c.agree == 4
    c = SeedComparison(**{**c.__dict__, "p_adjusted": 0.001})  # as if Holm had kept it significant
    assert verdict(c) == "no detectable difference"
    assert verdict(c, min_agree=0.4) == "beats"


def test_seventy_percent_is_enough():
    d = [0.05, 0.06, 0.04, 0.05, 0.06, 0.05, 0.04, -0.001, -0.002, -0.001]
    c = _pair(d)
    assert c.agree == 7 and c.p_value < 0.05 and verdict(c) == "beats"


def test_holm_over_the_family_and_the_bonferroni_detectable_difference():
    rng = np.random.default_rng(0)
    family = [_pair(list(rng.normal(shift, 0.02, 10))) for shift in (0.0, 0.01, 0.03, 0.05)]
    family.append(_pair([0.1, 0.2]))  # too few seeds: listed, not counted
    adjusted = holm(family)
    expected = multipletests([c.p_value for c in family[:4]], alpha=0.05, method="holm")[1]
    assert [c.p_adjusted for c in adjusted[:4]] == pytest.approx(list(expected))
    assert adjusted[4].p_adjusted is None and adjusted[4] == family[4]
    sd = np.std(family[0].differences, ddof=1)
    assert adjusted[0].min_detectable == pytest.approx(stats.t.ppf(1 - 0.05 / 8, 9) * sd / np.sqrt(10))
    assert adjusted[0].min_detectable > family[0].min_detectable  # m = 4 demands more than m = 1
    # Raw p below alpha that Holm lifts above it: no verdict.
    lifted = [c for c in adjusted[:4] if c.p_value < 0.05 <= c.p_adjusted]
    assert all(verdict(c) == "no detectable difference" for c in lifted)


def test_zero_spread_gives_clean_p_values_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = _pair([0.0] * 5)
        shifted = _pair([0.02] * 5, base=0.5)
    assert same.p_value == 1.0 and same.p_sign_flip == 1.0 and same.agree == 0 and same.mean == 0
    assert verdict(same) == "no detectable difference"
    assert shifted.p_value < 1e-6 and shifted.agree == 5 and verdict(shifted) == "beats"
    assert shifted.p_sign_flip == pytest.approx(2 / 32)
