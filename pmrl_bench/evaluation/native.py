"""Retrieval with an objective's own score (e.g. GRAM's negative volume), reported beside plain cosine.

Protocol (optional methods of an objective, see ``components.Objective``):

* ``native_score(queries, gallery) -> (Nq, Ng) tensor``: ``queries`` and ``gallery`` are mappings from modality
  name to (N, D) unit embeddings, row i of every modality being instance i; higher means more similar. A side
  may hold several modalities, so a score can compare one modality with a *tuple* of others (GRAM's anchor vs
  the other modalities of another instance), which a (Nq, D) × (Ng, D) signature cannot express.
* ``native_directions(modalities) -> [(query modalities, gallery modalities), ...]``: which directions the
  score is meant for, given the task's modalities in order. Without it, every ordered pair of single modalities.
* ``native_score_symmetric = True``: the score of a reversed direction is the transpose of the direction's
  (``native_score(g, q) == native_score(q, g).T``), as for a volume, whichever side is the query. A direction and
  its reverse are then ranked from one score matrix (its rows, then its columns) instead of two.

Results are keyed ``"m0->m1+m2"`` (query modalities -> gallery modalities, joined by "+") with R@1, R@5,
R@10 and MdR, ranked by ``retrieval.retrieval_ranks`` (pessimistic: ties count against the query).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from pmrl_bench.evaluation.retrieval import (
    gallery_block, ranks_both_ways_from_one_matrix, recall_metrics, retrieval_ranks,
)

Direction = tuple[tuple[str, ...], tuple[str, ...]]
# Queries per score call: a volume score holds (chunk x gallery chunk x (k-1)) float64 intermediates.
NATIVE_CHUNK = 256


def direction_key(queries: Sequence[str], gallery: Sequence[str]) -> str:
    return f"{'+'.join(queries)}->{'+'.join(gallery)}"


def native_directions(objective: Any, modalities: Sequence[str]) -> list[Direction]:
    """The objective's directions, checked against the task's modalities; default: all ordered pairs."""
    declared = getattr(objective, "native_directions", None)
    if not callable(declared):
        return [((q,), (g,)) for q, g in itertools.permutations(modalities, 2)]
    directions = [(tuple(q), tuple(g)) for q, g in declared(list(modalities))]
    for q, g in directions:
        unknown = [m for m in (*q, *g) if m not in modalities]
        if not q or not g or unknown or set(q) & set(g):
            raise ValueError(
                f"native_directions of {type(objective).__name__} returned {list(q)} -> {list(g)}; each side must be "
                f"a non-empty set of the task's modalities {list(modalities)}, the two sides disjoint"
            )
    return directions


def _rows(embeddings: Mapping[str, torch.Tensor], names: Sequence[str], index: torch.Tensor) -> dict[str, torch.Tensor]:
    return {m: embeddings[m][index.long().to(embeddings[m].device)] for m in names}


@torch.no_grad()
def native_ranks(
    objective: Any, embeddings: Mapping[str, torch.Tensor], chunk_size: int = NATIVE_CHUNK
) -> dict[str, torch.Tensor] | None:
    """``{"m0->m1+m2": ranks}``: 1-based rank of each query's ground truth by the objective's native score.

    Ranking goes through ``retrieval.retrieval_ranks`` over instance *indices* (the score looks the rows up), so
    the tie rule and the query/gallery chunking (bounded memory for large galleries) are those of cosine retrieval.
    A score declared ``native_score_symmetric`` ranks a direction and its reverse from one matrix while the split
    fits in one gallery block (the ranks are the same; half the scores are computed). None when the objective has no
    native score.
    """
    score = getattr(objective, "native_score", None)
    if not callable(score):
        return None
    symmetric = getattr(objective, "native_score_symmetric", False) is True
    n = len(next(iter(embeddings.values())))
    index = torch.arange(n)
    directions = native_directions(objective, list(embeddings))
    ranks: dict[str, torch.Tensor] = {}
    for q, g in directions:
        key = direction_key(q, g)
        if key in ranks:  # already ranked as the reverse of an earlier direction
            continue

        def indexed_score(qi: torch.Tensor, gi: torch.Tensor, q: tuple[str, ...] = q,
                          g: tuple[str, ...] = g) -> torch.Tensor:
            return score(_rows(embeddings, q, qi), _rows(embeddings, g, gi))

        if symmetric and (g, q) in directions and n <= gallery_block(chunk_size):
            ranks[key], ranks[direction_key(g, q)] = ranks_both_ways_from_one_matrix(index, index, indexed_score,
                                                                                     chunk_size)
        else:
            ranks[key] = retrieval_ranks(index, index, indexed_score, chunk_size=chunk_size)
    return {direction_key(q, g): ranks[direction_key(q, g)] for q, g in directions}


def native_retrieval(
    objective: Any, embeddings: Mapping[str, torch.Tensor], chunk_size: int = NATIVE_CHUNK
) -> dict[str, dict[str, float]] | None:
    """``{"m0->m1+m2": {"R@1", "R@5", "R@10", "MdR"}, ...}`` by the objective's native score; None if it has none."""
    ranks = native_ranks(objective, embeddings, chunk_size)
    return None if ranks is None else {direction: recall_metrics(r) for direction, r in ranks.items()}
