"""Baselines that do not train (``RESULTS/_baselines/<task>/*.json``, e.g. linear CCA) on the task pages: a reference
row of the cosine retrieval table of every protocol, never ranked.

A baseline is shown only on the page of its task, and only when it was computed on the same data as the task's
results (equal data fingerprints); otherwise it is listed with the skipped files, with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pmrl_bench.baselines.record import BaselineResult
from pmrl_bench.leaderboard.md import code
from pmrl_bench.leaderboard.tables import DETAIL_HEADERS, REFERENCE_RANK, RETRIEVAL_METRICS
from pmrl_bench.results import RunResult

DASH = "–"
NO_SEEDS = "no training"


def match_baselines(results: Sequence[RunResult], baselines: Sequence[tuple[str, BaselineResult]],
                    ) -> tuple[dict[str, list[BaselineResult]], list[tuple[str, str]]]:
    """``({task: baselines shown on its page}, [(path, why) of the baseline files left out])``."""
    fingerprints: dict[str, set[str | None]] = {}
    for r in results:
        fingerprints.setdefault(r.task, set()).add(r.data_fingerprint)
    shown: dict[str, list[BaselineResult]] = {}
    skipped: list[tuple[str, str]] = []
    for path, baseline in sorted(baselines, key=lambda item: item[0]):
        found = fingerprints.get(baseline.task)
        if found is None:
            skipped.append((path, f"baseline of task {baseline.task!r}, which has no results here"))
        elif found != {baseline.data_fingerprint}:
            recorded = ", ".join(sorted(f or "not recorded" for f in found))
            skipped.append((path, f"baseline data fingerprint {baseline.data_fingerprint} differs from the "
                                  f"results' ({recorded}): computed on other data"))
        else:
            shown.setdefault(baseline.task, []).append(baseline)
    return shown, skipped


def _value(baseline: BaselineResult, directions: Sequence[str], metric: str) -> str:
    if not directions or not all(d in baseline.retrieval for d in directions):
        return DASH
    mean = float(np.mean([baseline.retrieval[d][metric] for d in directions]))
    return f"{mean * 100:.1f}" if metric != "MdR" else f"{mean:.2f}"


def baseline_rows(baselines: Sequence[BaselineResult], directions: Sequence[str], detail: bool = True,
                  ) -> list[list[str]]:
    """Rows of the main retrieval table (rank, label, seeds, mean R@1, R@5, R@10, MdR[, spread, marks]): one value
    each, the mean over ``directions``; a dash where the baseline lacks one of them."""
    extra = [DASH] * len(DETAIL_HEADERS) if detail else []
    return [[REFERENCE_RANK, code(b.label), NO_SEEDS, *(_value(b, directions, m) for m in RETRIEVAL_METRICS), *extra]
            for b in baselines]


def direction_rows(baselines: Sequence[BaselineResult], directions: Sequence[str]) -> list[list[str]]:
    """Rows of the per-direction R@1 table (label, seeds, each direction, mean), without a rank column."""
    return [[code(b.label), NO_SEEDS, *(_value(b, [d], "R@1") for d in directions), _value(b, directions, "R@1")]
            for b in baselines]
