"""Per-query retrieval ranks, stored compactly in result files so leaderboards can bootstrap over test queries.

A result keeps ``metrics["per_query_ranks"][view][direction]`` as one string of space-separated 1-based
ranks, query i first (the same pessimistic rank rule as ``evaluation.retrieval``). A string, not a JSON list:
a list is one line per number in the indented result files, a string is one line.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np
import torch

from pmrl_bench.evaluation.retrieval import ScoreFn, cosine_scores, retrieval_ranks

PER_QUERY_KEY = "per_query_ranks"


def encode_ranks(ranks: torch.Tensor | np.ndarray) -> str:
    return " ".join(str(int(r)) for r in np.asarray(ranks).reshape(-1))


def decode_ranks(text: str) -> np.ndarray:
    return np.array(text.split(), dtype=np.int64)


def per_query_ranks(embeddings: Mapping[str, torch.Tensor], score: ScoreFn = cosine_scores) -> dict[str, str]:
    """``{"a->b": "1 3 2 ..."}`` for every ordered pair of modalities."""
    return {
        f"{q}->{g}": encode_ranks(retrieval_ranks(embeddings[q], embeddings[g], score))
        for q, g in itertools.permutations(embeddings, 2)
    }
