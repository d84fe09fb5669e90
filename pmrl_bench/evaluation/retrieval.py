"""Cross-modal retrieval metrics: R@K and median rank, for every ordered pair of modalities.

Rank rule (stated, pessimistic): the rank of query i is 1 + #{j != gt(i): s_ij >= s_i,gt(i)}, so ties
count against the query. R@K is the fraction of queries with rank <= K; MdR the median rank (1-based).

Scores are computed block by block, over query chunks *and* gallery chunks, keeping only a running count per
query, so memory is bounded by one (chunk_size x gallery_chunk_size) block whatever the gallery size: a
100 000-item gallery never materialises a 100 000 x 100 000 matrix.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

import numpy as np
import torch

RECALL_KS = (1, 5, 10)
QUERY_CHUNK = 1024
# 1024 x 1024 float32 = a 4 MiB block: small enough to stay in cache for the comparison pass, which on a CPU
# makes blocking faster than one dense matrix (measured in benchmarks/test_retrieval_speed.py).
GALLERY_CHUNK = 1024

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cosine_scores(queries: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of L2-normalised rows."""
    return queries.float() @ gallery.float().T


def gallery_block(chunk_size: int = QUERY_CHUNK, gallery_chunk_size: int | None = None) -> int:
    """The gallery block of :func:`retrieval_ranks`: ``gallery_chunk_size`` (default ``GALLERY_CHUNK``) rounded up
    to a multiple of the query chunk."""
    g_chunk = max(gallery_chunk_size or GALLERY_CHUNK, chunk_size)
    return -(-g_chunk // chunk_size) * chunk_size


def retrieval_ranks(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    score: ScoreFn = cosine_scores,
    chunk_size: int = QUERY_CHUNK,
    gallery_chunk_size: int | None = None,
) -> torch.Tensor:
    """1-based pessimistic rank of each query's ground truth (row i of the gallery), on the CPU.

    Queries are taken ``chunk_size`` at a time and the gallery ``gallery_chunk_size`` at a time (rounded up to a
    multiple of ``chunk_size``, default ``GALLERY_CHUNK``). Because gallery chunks are multiples of query chunks,
    a query chunk's ground truths all fall in one gallery block: its positive scores are read from that very
    block, so each positive is compared with the same float it is counted as (the tie rule stays exact).
    """
    if len(queries) != len(gallery):
        raise ValueError(f"queries and gallery must be instance-paired, got {len(queries)} and {len(gallery)}")
    if chunk_size < 1 or (gallery_chunk_size is not None and gallery_chunk_size < 1):
        raise ValueError(f"chunk sizes must be >= 1, got {chunk_size} and {gallery_chunk_size}")
    n = len(queries)
    g_chunk = gallery_block(chunk_size, gallery_chunk_size)
    ranks = []
    for q_start in range(0, n, chunk_size):
        q = queries[q_start : q_start + chunk_size]
        rows = torch.arange(len(q), device=q.device)
        # The gallery block holding this chunk's ground truths goes first: it yields the positives.
        home = q_start // g_chunk * g_chunk
        block = score(q, gallery[home : home + g_chunk])
        positive = block[rows, rows + (q_start - home)].unsqueeze(1)
        at_least = (block >= positive).sum(dim=1)  # includes the positive itself
        for g_start in range(0, n, g_chunk):
            if g_start != home:
                at_least += (score(q, gallery[g_start : g_start + g_chunk]) >= positive).sum(dim=1)
        ranks.append(at_least.cpu())
    return torch.cat(ranks) if ranks else torch.zeros(0, dtype=torch.long)


def recall_at_1(queries: torch.Tensor, gallery: torch.Tensor, chunk_size: int = QUERY_CHUNK) -> float:
    """R@1 of cosine retrieval by the same pessimistic rule as :func:`retrieval_ranks` (a query is a hit only when
    no other gallery item scores >= its positive), without counting ranks: one pass per query chunk."""
    if len(queries) != len(gallery):
        raise ValueError(f"queries and gallery must be instance-paired, got {len(queries)} and {len(gallery)}")
    hits = 0
    for start in range(0, len(queries), chunk_size):
        block = cosine_scores(queries[start : start + chunk_size], gallery)
        rows = torch.arange(len(block), device=block.device)
        positive = block[rows, rows + start].unsqueeze(1)
        hits += int(((block >= positive).sum(dim=1) == 1).sum())
    return hits / len(queries) if len(queries) else float("nan")


def recall_at_1_both_ways(a: torch.Tensor, b: torch.Tensor, chunk_size: int = QUERY_CHUNK) -> tuple[float, float]:
    """``(R@1 a->b, R@1 b->a)`` by :func:`recall_at_1`'s rule; one score matrix serves both directions when it fits
    in one query chunk (up to ``chunk_size`` squared scores), else two chunked passes."""
    n = len(a)
    if n > chunk_size or n == 0:
        return recall_at_1(a, b, chunk_size), recall_at_1(b, a, chunk_size)
    scores = cosine_scores(a, b)
    positive = scores.diagonal().clone()
    # A hit scores strictly above every other item of its row (column): a max, not a count, is all R@1 needs.
    # A NaN score is never >= a positive, so it must never be a row's maximum either.
    scores.nan_to_num_(nan=float("-inf")).diagonal().fill_(float("-inf"))
    forward = int((positive > scores.amax(dim=1)).sum())
    backward = int((positive > scores.amax(dim=0)).sum())
    return forward / n, backward / n


def retrieval_ranks_both_ways(
    a: torch.Tensor,
    b: torch.Tensor,
    score: ScoreFn = cosine_scores,
    chunk_size: int = QUERY_CHUNK,
    gallery_chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ranks a->b, ranks b->a)`` by :func:`retrieval_ranks`'s rule. Cosine scores are symmetric: when the whole
    score matrix fits in one block, one matrix serves both directions (its rows, then its columns), so both read the
    very same floats. Other scores, and larger sets, take two chunked passes."""
    n = len(a)
    if len(b) != n:
        raise ValueError(f"queries and gallery must be instance-paired, got {n} and {len(b)}")
    # retrieval_ranks' gallery blocks are never smaller than its query chunk: n <= chunk_size is one block
    if score is not cosine_scores or n == 0 or n > chunk_size:
        return (retrieval_ranks(a, b, score, chunk_size, gallery_chunk_size),
                retrieval_ranks(b, a, score, chunk_size, gallery_chunk_size))
    return ranks_both_ways_from_one_matrix(a, b, score, chunk_size)


def ranks_both_ways_from_one_matrix(
    a: torch.Tensor, b: torch.Tensor, score: ScoreFn, chunk_size: int = QUERY_CHUNK
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ranks a->b, ranks b->a)`` of a score whose reverse is its transpose (``score(b, a) == score(a, b).T``),
    from one matrix: its rows, then its columns, so both directions read the very same floats.

    The matrix is scored query chunk by query chunk against the whole gallery, which must fit in one gallery block
    (``len(b) <= gallery_block(chunk_size)``): then these are the blocks :func:`retrieval_ranks` scores, and the
    ranks a->b are exactly its ranks."""
    n = len(a)
    if len(b) != n or n > gallery_block(chunk_size):
        raise ValueError(f"one matrix needs instance-paired sets within one gallery block, got {n} and {len(b)}")
    scores = torch.cat([score(a[start : start + chunk_size], b) for start in range(0, n, chunk_size)])
    positive = scores.diagonal()
    forward = torch.count_nonzero(scores >= positive[:, None], dim=1)  # each includes the positive itself
    backward = torch.count_nonzero(scores >= positive[None, :], dim=0)
    return forward.cpu(), backward.cpu()


def recall_metrics(ranks: torch.Tensor) -> dict[str, float]:
    """R@K (the share of ranks <= K) and MdR (the median rank, the mean of the two middle ones for an even count)."""
    values = ranks.cpu().numpy()  # a few hundred integers: numpy does this in a fraction of torch's dispatch time
    metrics = {f"R@{k}": float(np.mean(values <= k)) for k in RECALL_KS}
    metrics["MdR"] = float(np.median(values))
    return metrics


def pairwise_ranks(
    embeddings: Mapping[str, torch.Tensor],
    score: ScoreFn = cosine_scores,
    chunk_size: int = QUERY_CHUNK,
    gallery_chunk_size: int | None = None,
) -> dict[str, torch.Tensor]:
    """``{"a->b": ranks}`` (one per query) for every ordered pair of modalities, each unordered pair scored by
    :func:`retrieval_ranks_both_ways`."""
    ranks = {}
    for a, b in itertools.combinations(embeddings, 2):
        ranks[f"{a}->{b}"], ranks[f"{b}->{a}"] = retrieval_ranks_both_ways(embeddings[a], embeddings[b], score,
                                                                           chunk_size, gallery_chunk_size)
    return {f"{q}->{g}": ranks[f"{q}->{g}"] for q, g in itertools.permutations(embeddings, 2)}


def pairwise_retrieval(
    embeddings: Mapping[str, torch.Tensor],
    score: ScoreFn = cosine_scores,
    chunk_size: int = QUERY_CHUNK,
    gallery_chunk_size: int | None = None,
) -> dict[str, dict[str, float]]:
    """``{"a->b": {"R@1", "R@5", "R@10", "MdR"}}`` for every ordered pair of modalities."""
    return {d: recall_metrics(r) for d, r in pairwise_ranks(embeddings, score, chunk_size, gallery_chunk_size).items()}


def mean_r1(embeddings: Mapping[str, torch.Tensor]) -> float:
    """Cosine R@1 averaged over every ordered pair of modalities, with the evaluation's pessimistic rank rule
    (a query is a hit only when no other gallery item scores >= its positive). One matmul per unordered pair."""
    hits = []
    for a, b in itertools.combinations(sorted(embeddings), 2):
        scores = embeddings[a].float() @ embeddings[b].float().T
        positive = scores.diagonal()
        hits.append(((scores >= positive[:, None]).sum(dim=1) == 1).double().mean())  # a -> b
        hits.append(((scores >= positive[None, :]).sum(dim=0) == 1).double().mean())  # b -> a
    return float(torch.stack(hits).mean())
