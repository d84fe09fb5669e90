"""Retrieval and classification metrics against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pmrl_bench.evaluation.classification import fuse, probe_accuracies
from pmrl_bench.evaluation.retrieval import pairwise_retrieval, recall_metrics, retrieval_ranks


def _scores_as(table):
    matrix = torch.tensor(table, dtype=torch.float32)
    return lambda q, g: matrix[: len(q)]


def test_ranks_hand_computed():
    # query 0: gt score 0.9 is the best -> rank 1; query 1: 0.8 and 0.7 beat gt 0.5 -> rank 3;
    # query 2: gt 0.2 beaten by 0.9 only -> rank 2.
    scores = [[0.9, 0.1, 0.3], [0.8, 0.5, 0.7], [0.9, 0.1, 0.2]]
    ranks = retrieval_ranks(torch.zeros(3, 1), torch.zeros(3, 1), score=_scores_as(scores))
    assert ranks.tolist() == [1, 3, 2]
    metrics = recall_metrics(ranks)
    assert metrics == {"R@1": pytest.approx(1 / 3), "R@5": 1.0, "R@10": 1.0, "MdR": 2.0}


def test_ties_count_against_the_query():
    scores = [[0.5, 0.5], [0.5, 0.5]]
    ranks = retrieval_ranks(torch.zeros(2, 1), torch.zeros(2, 1), score=_scores_as(scores))
    assert ranks.tolist() == [2, 2]


def test_median_rank_of_even_count_is_mean_of_middles():
    assert recall_metrics(torch.tensor([1, 2, 5, 9]))["MdR"] == 3.5


def test_chunking_does_not_change_ranks():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(50, 8, generator=g), torch.randn(50, 8, generator=g)
    assert torch.equal(retrieval_ranks(q, k, chunk_size=7), retrieval_ranks(q, k, chunk_size=1000))


def test_pairwise_retrieval_covers_every_ordered_pair_and_is_perfect_on_identical_modalities():
    x = torch.nn.functional.normalize(torch.randn(20, 5, generator=torch.Generator().manual_seed(1)), dim=-1)
    out = pairwise_retrieval({"a": x, "b": x.clone(), "c": -x})
    assert set(out) == {"a->b", "b->a", "a->c", "c->a", "b->c", "c->b"}
    assert out["a->b"]["R@1"] == 1.0 and out["a->b"]["MdR"] == 1.0
    assert out["a->c"]["R@1"] == 0.0  # anti-aligned: the positive is the worst match
    assert out["a->c"]["MdR"] == 20.0


def test_fuse_is_unit_norm_mean():
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert torch.allclose(fuse({"a": a, "b": b}), torch.tensor([[2**-0.5, 2**-0.5]]))


def test_linear_probe_separable_vs_random_labels():
    rng = np.random.default_rng(0)
    y_train, y_test = rng.integers(0, 2, 200), rng.integers(0, 2, 100)
    centres = np.array([[-3.0, 0.0], [3.0, 0.0]])
    train = {"a": torch.tensor(centres[y_train] + rng.normal(size=(200, 2)), dtype=torch.float32)}
    test = {"a": torch.tensor(centres[y_test] + rng.normal(size=(100, 2)), dtype=torch.float32)}
    acc = probe_accuracies(train, y_train, test, y_test)
    assert acc["linear:a"] > 0.95 and set(acc) == {"linear:a", "linear:fused", "knn:a", "knn:fused"}
    shuffled = probe_accuracies(train, rng.permutation(y_train), test, y_test)
    assert shuffled["linear:a"] < 0.75


def test_recall_at_1_matches_the_ranks_rule_ties_included():
    import torch

    from pmrl_bench.evaluation.retrieval import recall_at_1, recall_at_1_both_ways, recall_metrics, retrieval_ranks

    generator = torch.Generator().manual_seed(0)
    queries = torch.nn.functional.normalize(torch.randn(300, 8, generator=generator), dim=-1)
    gallery = torch.nn.functional.normalize(queries + 0.5 * torch.randn(300, 8, generator=generator), dim=-1)
    gallery[7] = gallery[3]  # a tie: query 3's positive is matched by another item, so it is not a hit
    for chunk in (1, 64, 1024):
        assert recall_at_1(queries, gallery, chunk) == recall_metrics(retrieval_ranks(queries, gallery))["R@1"]
    for chunk in (64, 1024):  # one score matrix for both directions, or two passes
        assert recall_at_1_both_ways(queries, gallery, chunk) == (
            recall_metrics(retrieval_ranks(queries, gallery))["R@1"],
            recall_metrics(retrieval_ranks(gallery, queries))["R@1"])


def test_both_directions_from_one_score_matrix_match_two_passes_ties_included():
    from pmrl_bench.evaluation.retrieval import pairwise_ranks, retrieval_ranks, retrieval_ranks_both_ways

    # Small integers: every score is exact, so one matrix read both ways must give exactly the two passes' ranks.
    generator = torch.Generator().manual_seed(2)
    a = torch.randint(-2, 3, (40, 6), generator=generator).float()
    b = torch.randint(-2, 3, (40, 6), generator=generator).float()
    b[5] = b[9]  # duplicate gallery items: a tie in both directions
    two_passes = retrieval_ranks(a, b), retrieval_ranks(b, a)
    for chunk in (8, 1024):  # several chunks take the two-pass route; one chunk, the shared matrix
        forward, backward = retrieval_ranks_both_ways(a, b, chunk_size=chunk)
        assert torch.equal(forward, two_passes[0]) and torch.equal(backward, two_passes[1])
    ranks = pairwise_ranks({"x": a, "y": b, "z": -a})
    assert list(ranks) == ["x->y", "x->z", "y->x", "y->z", "z->x", "z->y"]  # the ordered pairs, in order
    assert torch.equal(ranks["y->x"], two_passes[1]) and torch.equal(ranks["z->y"], retrieval_ranks(-a, b))


def test_recall_at_1_both_ways_never_counts_a_nan_score_as_a_competitor():
    from pmrl_bench.evaluation.retrieval import recall_at_1, recall_at_1_both_ways

    eye = torch.eye(4)
    gallery = eye.clone()
    gallery[2] = float("nan")  # item 2's scores are NaN: query 2 misses, the others still hit (NaN is never >=)
    assert recall_at_1_both_ways(eye, gallery) == (recall_at_1(eye, gallery), recall_at_1(gallery, eye)) == (0.75, 0.75)
