"""Per-query retrieval ranks, stored compactly in result files so leaderboards can bootstrap over test queries.

A result keeps ``metrics["per_query_ranks"][view][direction]`` as one string of space-separated 1-based
ranks, query i first (the same pessimistic rank rule as ``evaluation.retrieval``). A string, not a JSON list:
a list is one line per number in the indented result files, a string is one line.
"""

from __future__ import annotations

import numpy as np
import torch

PER_QUERY_KEY = "per_query_ranks"


def encode_ranks(ranks: torch.Tensor | np.ndarray) -> str:
    return " ".join(map(str, np.asarray(ranks).reshape(-1).astype(np.int64).tolist()))


def decode_ranks(text: str) -> np.ndarray:
    return np.array(text.split(), dtype=np.int64)

