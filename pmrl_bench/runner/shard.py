"""Sharded sweeps: ``run --shard I/N`` runs a deterministic 1/N of the planned runs.

N machines given the same sweep flags (a Slurm array, CI matrix jobs) each run one shard; every run lands in
exactly one shard, so copying the shards' result files into one directory gives the unsharded sweep's results,
and ``pmrl-bench leaderboard DIR`` builds the leaderboards from the union.

Assignment: runs are ordered by a hash of their run id (task, objective, configuration hash, seed) and dealt out
round-robin. It depends only on the *set* of runs, so the order of flags or names on the command line does not
matter, and shard sizes differ by at most one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from pmrl_bench.errors import UsageError

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    match = _SHARD.match(text)
    if not match:
        raise UsageError(f"--shard must be I/N with 1 <= I <= N (e.g. 2/4), got {text!r}")
    index, count = int(match[1]), int(match[2])
    if count < 1 or not 1 <= index <= count:
        raise UsageError(f"--shard must be I/N with 1 <= I <= N (e.g. 2/4), got {text!r}")
    return Shard(index, count)


def _key(run_id: str) -> str:
    return hashlib.sha256(run_id.encode()).hexdigest()


def shard_indices(run_ids: Sequence[str], shard: Shard) -> list[int]:
    """Positions (in the given order) of the runs that belong to ``shard``."""
    if len(set(run_ids)) != len(run_ids):
        raise ValueError("run ids must be unique to shard a sweep")
    dealt = sorted(range(len(run_ids)), key=lambda i: _key(run_ids[i]))
    mine = set(dealt[shard.index - 1 :: shard.count])
    return [i for i in range(len(run_ids)) if i in mine]


def select_shard(items: Sequence[T], run_ids: Sequence[str], shard: Shard) -> list[T]:
    """The items (paired with ``run_ids``) in ``shard``, in their original order."""
    return [items[i] for i in shard_indices(run_ids, shard)]
