"""The built-in objectives check their parameters one way: a one-line error naming the parameter and its range."""

from __future__ import annotations

import math

import pytest

import pmrl_bench
from pmrl_bench.builtins.objectives._common import (
    check_at_least,
    check_choice,
    check_in_range,
    check_positive,
)
from pmrl_bench.builtins.objectives.anchor_tuple import AnchorTupleObjective
from pmrl_bench.errors import UsageError


@pytest.mark.parametrize(
    "name, params, expected",
    [
        ("gram", {"temperature": 0.0}, "temperature must be > 0, got 0.0"),
        ("triangle", {"temperature": 2.0}, "temperature must be in [0.01, 1] ("),
        ("triangle", {"label_smoothing": 1.0}, "label_smoothing must be in [0, 1), got 1.0"),
        ("gram", {"precision": "float16"}, "precision must be one of float64, float32, got 'float16'"),
        ("anchor", {"reduction": "max"}, "reduction must be one of mean, sum, got 'max'"),
        ("pmrl", {"tau1": -1.0}, "tau1 and tau2 must be > 0, got tau1=-1.0, tau2=0.1"),
        ("pmrl-intra", {"tau1": 0.0}, "tau1 must be > 0, got 0.0"),
        ("volume", {"grad_guard": -1.0}, "grad_guard must be >= 0 (0 = exact gradient), got -1.0"),
        ("confu", {}, "dim must be >= 1 (the embedding dimension; the runner passes --dim), got None"),
        ("confu", {"dim": 4, "modalities": 2}, "modalities must be in [3, 8] ("),
        ("confu", {"dim": 4, "layers": 0}, "hidden and layers must be >= 1, got hidden=512, layers=0"),
        ("confu", {"dim": 4, "dropout": 1.0}, "dropout must be in [0, 1), got 1.0"),
    ],
)
def test_a_bad_parameter_is_a_one_line_usage_error_naming_it_and_its_range(name, params, expected):
    with pytest.raises(UsageError) as caught:
        pmrl_bench.create_objective(name, **params)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_the_checks_accept_the_bounds_and_reject_nan_and_none():
    check_positive(a=1e-9)
    check_at_least(0, a=0.0, b=3)
    check_in_range(0.0, 1.0, a=0.0, b=1.0)
    check_in_range(0.0, 1.0, high_open=True, a=0.0)
    check_choice(("x", "y"), a="y")
    for bad in (math.nan, None):
        with pytest.raises(ValueError, match="a must be > 0"):
            check_positive(a=bad)
    with pytest.raises(ValueError, match=r"a must be in \[0, 1\), got 1.0"):
        check_in_range(0.0, 1.0, high_open=True, a=1.0)


def test_gram_and_triangle_share_the_anchor_tuple_base_and_keep_their_own_measure():
    gram, triangle = pmrl_bench.create_objective("gram"), pmrl_bench.create_objective("triangle")
    assert isinstance(gram, AnchorTupleObjective) and isinstance(triangle, AnchorTupleObjective)
    for objective in (gram, triangle):
        own = vars(type(objective))
        assert "_measure" in own and not {"forward", "native_directions", "check_modalities"} & set(own)
