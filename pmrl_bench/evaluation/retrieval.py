"""Cross-modal retrieval metrics: R@K and median rank, for every ordered pair of modalities.

Rank rule (stated, pessimistic): the rank of query i is 1 + #{j != gt(i): s_ij >= s_i,gt(i)}, so ties
count against the query. R@K is the fraction of queries with rank <= K; MdR the median rank (1-based).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

import torch

RECALL_KS = (1, 5, 10)

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cosine_scores(queries: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of L2-normalised rows."""
    return queries.float() @ gallery.float().T


def retrieval_ranks(
    queries: torch.Tensor, gallery: torch.Tensor, score: ScoreFn = cosine_scores, chunk_size: int = 1024
) -> torch.Tensor:
    """1-based pessimistic rank of each query's ground truth (row i of the gallery), chunked over queries."""
    if len(queries) != len(gallery):
        raise ValueError(f"queries and gallery must be instance-paired, got {len(queries)} and {len(gallery)}")
    ranks = []
    for start in range(0, len(queries), chunk_size):
        scores = score(queries[start : start + chunk_size], gallery)  # (chunk, N)
        rows = torch.arange(len(scores), device=scores.device)
        positive = scores[rows, rows + start].unsqueeze(1)
        at_least = (scores >= positive).sum(dim=1)  # includes the positive itself
        ranks.append(at_least.cpu())
    return torch.cat(ranks)


def recall_metrics(ranks: torch.Tensor) -> dict[str, float]:
    ranks = ranks.double()
    metrics = {f"R@{k}": float((ranks <= k).double().mean()) for k in RECALL_KS}
    # torch.median returns the lower middle value; use the usual mean of the two middles instead.
    metrics["MdR"] = float(ranks.quantile(0.5))
    return metrics


def pairwise_retrieval(embeddings: Mapping[str, torch.Tensor], score: ScoreFn = cosine_scores) -> dict[str, dict[str, float]]:
    """``{"a->b": {"R@1", "R@5", "R@10", "MdR"}}`` for every ordered pair of modalities."""
    return {
        f"{q}->{g}": recall_metrics(retrieval_ranks(embeddings[q], embeddings[g], score))
        for q, g in itertools.permutations(embeddings, 2)
    }
