"""Retrieval ranks computed block by block (queries x gallery) equal the dense computation, ties included,
and no block exceeds the bound whatever the gallery size."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pmrl_bench.evaluation.retrieval import cosine_scores, pairwise_retrieval, retrieval_ranks


def dense_ranks(queries, gallery):
    """The rank rule written directly on the full matrix: 1 + #{j != i: s_ij >= s_ii}."""
    scores = cosine_scores(queries, gallery)
    positive = scores.diagonal().unsqueeze(1)
    return (scores >= positive).sum(dim=1)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 60), dim=st.integers(1, 6), chunk=st.integers(1, 70), gallery_chunk=st.integers(1, 90),
       levels=st.sampled_from([2, 3, 1000]), seed=st.integers(0, 2**16))
def test_blocked_ranks_equal_dense_ranks(n, dim, chunk, gallery_chunk, levels, seed):
    g = torch.Generator().manual_seed(seed)
    # few distinct values (levels=2, 3) make many exact ties: the pessimistic rule must survive blocking
    q = torch.randint(0, levels, (n, dim), generator=g).float()
    k = torch.randint(0, levels, (n, dim), generator=g).float()
    got = retrieval_ranks(q, k, chunk_size=chunk, gallery_chunk_size=gallery_chunk)
    assert torch.equal(got, dense_ranks(q, k))


def test_blocks_are_bounded_and_cover_the_gallery_once():
    n, chunk, gallery_chunk = 1000, 64, 200  # gallery chunk rounds up to 256, a multiple of 64
    shapes = []

    def spy(q, g):
        shapes.append((len(q), len(g)))
        return cosine_scores(q, g)

    x = torch.nn.functional.normalize(torch.randn(n, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    ranks = retrieval_ranks(x, x, score=spy, chunk_size=chunk, gallery_chunk_size=gallery_chunk)
    assert max(a for a, _ in shapes) <= 64 and max(b for _, b in shapes) <= 256
    assert sum(a * b for a, b in shapes) == n * n  # every score computed exactly once
    assert torch.equal(ranks, torch.ones(n, dtype=torch.long))


def test_pairwise_retrieval_passes_chunk_sizes_through():
    x = torch.nn.functional.normalize(torch.randn(30, 4, generator=torch.Generator().manual_seed(2)), dim=-1)
    y = torch.nn.functional.normalize(x + 0.3 * torch.randn(30, 4, generator=torch.Generator().manual_seed(3)), dim=-1)
    blocked = pairwise_retrieval({"a": x, "b": y}, chunk_size=4, gallery_chunk_size=8)
    assert blocked == pairwise_retrieval({"a": x, "b": y})
