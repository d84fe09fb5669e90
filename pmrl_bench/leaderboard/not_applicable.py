"""Configurations recorded as not applicable to a task (the objective does not accept its number of modalities):
kept out of every ranking and statistic, shown as rows of dashes under the main retrieval table with the reason.

Pages built from results without such runs are byte for byte what they were before this module existed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pmrl_bench.leaderboard.data import Run
from pmrl_bench.leaderboard.md import code, text
from pmrl_bench.leaderboard.tables import by_label, markdown, seeds_cell
from pmrl_bench.results.schema import NOT_APPLICABLE

DASH = "–"


def split_runs(runs: Sequence[Run]) -> tuple[list[Run], dict[str, list[Run]]]:
    """``(runs that trained or were meant to, {label: runs recorded as not applicable})``."""
    applicable = [r for r in runs if r.status != NOT_APPLICABLE]
    skipped = by_label([r for r in runs if r.status == NOT_APPLICABLE])
    return applicable, skipped


def dash_rows(rows: Mapping[str, Sequence[Run]], columns: int, rank: bool = True) -> list[list[str]]:
    """One row per configuration: no rank, ``not applicable`` for the seeds, and a dash in each of ``columns``."""
    return [[*([DASH] if rank else []), code(label), seeds_cell(runs), *([DASH] * columns)]
            for label, runs in rows.items()]


def reasons(rows: Mapping[str, Sequence[Run]]) -> list[str]:
    """A line per configuration: why it did not train (the result files' ``error``, written by the planner)."""
    lines = []
    for label, runs in rows.items():
        why = sorted({r.result.error or "no reason recorded" for r in runs})
        lines.append(f"- {code(label)}: not applicable, so not trained: {text('; '.join(why))}")
    return lines


def section(rows: Mapping[str, Sequence[Run]], level: str = "###") -> list[str]:
    """The table and reasons on their own, for a protocol where nothing else was run."""
    if not rows:
        return []
    table = markdown(dash_rows(rows, 1, rank=False), ["objective", "seeds ok", "mean R@1"])
    return [f"{level} Not applicable", "", table, "", *reasons(rows), ""]
