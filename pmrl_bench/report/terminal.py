"""Results at the terminal: per-task tables (tabulate) and a JSON summary, built from result files like the
leaderboards and with the leaderboards' statistics (cells, intervals and ranks come from ``pmrl_bench.leaderboard``).

``pmrl-bench run`` ends with :func:`compact_tables` (rank, seeds, mean R@1, the fused linear probe);
``pmrl-bench show`` prints :func:`main_tables` (every retrieval summary metric and every classification probe).
Both give :func:`summary_json` under ``--json``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from pmrl_bench.leaderboard.data import MAIN_VIEW, Run, hardware, runs_of
from pmrl_bench.leaderboard.tables import (
    DETAIL_HEADERS, HIGHER_IS_BETTER, RETRIEVAL_METRICS, Cell, by_label, format_cell, main_rank_column, marks_cell,
    retrieval_cell, scalar_cell, seed_means, seeds_cell, spread_cell,
)
from pmrl_bench.console import escape, shorten
from pmrl_bench.results import RunResult
from pmrl_bench.results.schema import NOT_APPLICABLE
from pmrl_bench.run_marks import RunMarks, run_marks

if TYPE_CHECKING:
    from pmrl_bench.runner.summary import SweepSummary

FUSED_PROBE = "linear:fused"  # the classification headline: a linear probe on the mean of the modalities
TABLE_FORMAT = "simple"
CELL_LIMIT = 200  # characters of one cell: a label or task name from a result file can be any length


@dataclass
class Row:
    """One configuration of one task: its rank on mean R@1, seed counts and cells (fractions, not percent)."""

    label: str
    rank: int | None  # within the configuration's protocol (configurations of two protocols never rank together)
    seeds: str  # "3/3", "2/3 (1 diverged)": as the leaderboards write it
    counts: dict[str, int]  # {"ok", "diverged", "failed", "total"}
    retrieval: dict[str, Cell] = field(default_factory=dict)  # metric -> mean over the cosine directions
    classification: dict[str, Cell] = field(default_factory=dict)  # probe -> accuracy
    objective: str = ""
    protocol: str = "scratch"
    spread: str = "–"  # lowest..highest per-seed mean R@1 in %, as the pages write it
    marks: str = "–"  # "inert 3/3", "collapsed 2/3 (fou)", "none": as the pages write it
    seed_r1: list[float] = field(default_factory=list)  # per finished seed: mean R@1 (fraction)
    run_marks: list[tuple[int, str, RunMarks]] = field(default_factory=list)  # (seed, status, marks) per run


@dataclass
class TaskSummary:
    task: str
    directions: int  # cosine retrieval directions the means are over
    rows: list[Row]
    hardware: str = ""  # "devices cpu (1 thread); CPUs <model> (<capability>)": what the runs computed on


def _counts(runs: Sequence[Run]) -> dict[str, int]:
    counts = {status: sum(1 for r in runs if r.status == status) for status in ("ok", "diverged", "failed")}
    skipped = sum(1 for r in runs if r.status == NOT_APPLICABLE)  # never trained: listed only where there are some
    return {**counts, **({NOT_APPLICABLE: skipped} if skipped else {}), "total": len(runs)}


def summarize(results: Sequence[RunResult], full: bool = False) -> list[TaskSummary]:
    """One summary per task, rows sorted by rank then label. ``full``: every retrieval metric and every probe;
    otherwise mean R@1 and the fused linear probe only (what ``run`` shows, and cheaper to bootstrap)."""
    from pmrl_bench.leaderboard.protocols import by_protocol
    from pmrl_bench.leaderboard.sections import main_ranks

    summaries = []
    for task, runs in runs_of(results).items():
        rank_column = main_rank_column(runs)
        ranks: dict[str, int] = {}
        protocols: list[str] = []
        for group in by_protocol(runs):  # ranked as on the pages: paired tests within each protocol
            ranked = by_label([r for r in group.runs if r.status != NOT_APPLICABLE])
            if ranked:
                ranks.update(main_ranks(ranked)[0])
            protocols.append(group.name)
        directions = sorted({d for r in runs for d in r.views.get(MAIN_VIEW, {})})
        probes = sorted({p for r in runs for p in r.classification}) if full else [FUSED_PROBE]
        rows = []
        for label, label_runs in by_label(runs).items():
            retrieval: dict[str, Cell] = {}
            if rank_column is not None:
                retrieval["R@1"] = rank_column.cells[label]
                if full:
                    retrieval.update({m: retrieval_cell(label_runs, MAIN_VIEW, directions, m)
                                      for m in RETRIEVAL_METRICS if m != "R@1"})
            classification = {
                p: scalar_cell(label_runs, lambda r, p=p: r.classification.get(p))
                for p in probes
                if any(p in r.classification for r in label_runs)
            }
            rows.append(Row(label, ranks.get(label), seeds_cell(label_runs), _counts(label_runs), retrieval,
                            classification, label_runs[0].result.objective, label_runs[0].result.protocol,
                            spread_cell(label_runs, MAIN_VIEW, directions), marks_cell(label_runs),
                            seed_means(label_runs, MAIN_VIEW, directions),
                            [(r.seed, r.status, run_marks(r.result)) for r in label_runs]))
        order = {name.split("#")[0]: i for i, name in enumerate(protocols)}
        rows.sort(key=lambda row: (order.get(row.protocol, 0), row.rank if row.rank is not None else math.inf,
                                   row.label))
        summaries.append(TaskSummary(task, len(directions), rows, hardware([r.result for r in runs])))
    return summaries


def _cell_text(cell: Cell | None, percent: bool = True, interval: bool = True) -> str:
    if cell is None:
        return "–"
    if not interval:
        cell = Cell(cell.mean, cell.std, None, cell.seed_only)
    return format_cell(cell, percent=percent, bold=False, mark_seed_only=False)


def _probe_order(probe: str) -> tuple[bool, bool, str]:
    """Fused probes first, then linear before k-NN, then by modality."""
    kind, _, view = probe.partition(":")
    return view != "fused", kind != "linear", probe


def _rank_text(row: Row) -> str:
    return "–" if row.rank is None else str(row.rank)


def _safe(text: str) -> str:
    """A string from a result file, fit for a terminal cell: control characters escaped (a result file may hold
    ``ESC[2J``), a newline too so the table keeps its rows, and cut to :data:`CELL_LIMIT` characters."""
    return escape(shorten(str(text), CELL_LIMIT))


def _render(headers: list[str], body: list[list[str]]) -> str:
    return tabulate([[_safe(cell) for cell in row] for row in body], headers=[_safe(h) for h in headers],
                    tablefmt=TABLE_FORMAT, disable_numparse=True)


def _title(summary: TaskSummary, what: str) -> str:
    runs = sum(row.counts["total"] for row in summary.rows)
    return f"{_safe(summary.task)} ({len(summary.rows)} configurations, {runs} runs): {what}"


def compact_tables(summaries: Sequence[TaskSummary]) -> str:
    """Per task: rank, objective, seeds ok, mean R@1 and the fused linear probe, each mean ± std [95% interval]."""
    blocks = []
    for summary in summaries:
        body = [[_rank_text(row), row.label, row.seeds, _cell_text(row.retrieval.get("R@1")),
                 _cell_text(row.classification.get(FUSED_PROBE))] for row in summary.rows]
        headers = ["rank", "objective", "seeds ok", "mean R@1 %", "fused linear probe %"]
        what = f"mean R@1 over {summary.directions} cosine directions; % as mean ± std [95% interval]"
        blocks.append(f"{_title(summary, what)}\n{_render(headers, body)}")
    return "\n\n".join(blocks)


def main_tables(summaries: Sequence[TaskSummary]) -> str:
    """Per task: the leaderboard's retrieval summary (R@K in %, MdR) and its classification table (accuracy %)."""
    blocks = []
    for summary in summaries:
        metrics = [m for m in RETRIEVAL_METRICS if any(m in row.retrieval for row in summary.rows)]
        body = [[_rank_text(row), row.label, row.seeds,
                 *(_cell_text(row.retrieval.get(m), percent=m != "MdR") for m in metrics), row.spread, row.marks]
                for row in summary.rows]
        headers = ["rank", "objective", "seeds ok", *(f"{m} {'↑' if HIGHER_IS_BETTER[m] else '↓'}" for m in metrics),
                   *DETAIL_HEADERS]
        what = (f"cosine retrieval, mean over {summary.directions} directions; R@K in %, mean ± std "
                "[95% interval]; R@1 min..max over seeds; marks: seeds that did not train (inert) or collapsed")
        blocks.append(f"{_title(summary, what)}\n{_render(headers, body)}\ncomputed on {_safe(summary.hardware)}")
        marked = marks_table(summary)
        if marked:
            blocks.append(marked)
        probes = sorted({p for row in summary.rows for p in row.classification}, key=_probe_order)
        if probes:  # one column per probe: mean ± std only, so the table fits a terminal (--json has intervals)
            body = [[row.label, row.seeds, *(_cell_text(row.classification.get(p), interval=False) for p in probes)]
                    for row in summary.rows]
            title = f"{_safe(summary.task)}: classification probes on frozen embeddings; accuracy %, mean ± std"
            blocks.append(f"{title}\n{_render(['objective', 'seeds ok', *probes], body)}")
    return "\n\n".join(blocks)


def _marks_text(marks: RunMarks) -> str:
    found = [f"inert: {marks.inert_reason}"] if marks.inert else []
    found += [f"collapsed {reason}" for reason in marks.collapse_reasons]
    return "; ".join(found)


def marks_table(summary: TaskSummary) -> str:
    """Per run with a mark: the configuration, the seed and why (``inert: loss never moved ...``); empty when no
    finished run of the task is marked."""
    body = [[row.label, str(seed), _marks_text(marks)]
            for row in summary.rows for seed, _, marks in row.run_marks if marks.inert or marks.collapsed]
    if not body:
        return ""
    title = f"{_safe(summary.task)}: runs marked inert (did not train) or collapsed; every other finished run: none"
    return f"{title}\n{_render(['objective', 'seed', 'marks'], body)}"


def _marks_json(seed: int, status: str, marks: RunMarks) -> dict[str, Any]:
    return {"seed": seed, "status": status, "inert": marks.inert, "inert_reason": marks.inert_reason,
            "collapsed": list(marks.collapsed), "collapse_reasons": list(marks.collapse_reasons)}


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def cell_json(cell: Cell) -> dict[str, Any]:
    """``{"mean", "std", "low", "high", "interval"}`` as fractions; ``interval`` says which bootstrap gave it."""
    low, high = cell.interval if cell.interval is not None else (math.nan, math.nan)
    kind = None if cell.interval is None else ("seeds" if cell.seed_only else "seeds and queries")
    return {"mean": _number(cell.mean), "std": _number(cell.std), "low": _number(low), "high": _number(high),
            "interval": kind}


def summary_json(summaries: Sequence[TaskSummary]) -> dict[str, Any]:
    """``{task: {"directions", "hardware", "configurations": [{"label", "objective", "protocol", "rank", "seeds",
    "retrieval", "classification", "seed_R@1", "runs"}]}}``; ranks are within each protocol. ``seed_R@1``:
    ``{"min", "max"}`` of the per-seed mean R@1 (fractions; null without a finished seed); ``runs``: each run's
    marks; ``hardware``: the devices and CPUs the runs were computed on."""
    return {
        s.task: {
            "directions": s.directions,
            "hardware": s.hardware,
            "configurations": [
                {"label": row.label, "objective": row.objective, "protocol": row.protocol, "rank": row.rank,
                 "seeds": row.counts,
                 "retrieval": {m: cell_json(c) for m, c in row.retrieval.items()},
                 "classification": {p: cell_json(c) for p, c in row.classification.items()},
                 "seed_R@1": {"min": min(row.seed_r1, default=None), "max": max(row.seed_r1, default=None)},
                 "runs": [_marks_json(*run) for run in row.run_marks]}
                for row in s.rows
            ],
        }
        for s in summaries
    }


def sweep_json(sweep: SweepSummary, tasks: Sequence[TaskSummary], results_dir: Path, leaderboard_dir: Path
               ) -> dict[str, Any]:
    """``run --json``: the sweep's counts (``ok``/``diverged``/``failed`` ran now), where things are, the tables."""
    counts = {"planned": sweep.planned, "ok": sweep.ok, "diverged": sweep.diverged, "failed": sweep.failed,
              "not_applicable": sweep.not_applicable, "already_done": sweep.skipped,
              "already_done_by_status": dict(sweep.reused)}
    return {"runs": counts, "results": str(results_dir), "leaderboards": str(leaderboard_dir),
            "tasks": summary_json(tasks)}
