"""Markdown tables of the leaderboards: retrieval and classification (rows = configurations, with 95% CIs, the
best marked and ties shown), and stability (rows = metrics, columns = configurations, mean ± std and CV).

pandas holds the tables and tabulate renders them; every number is formatted here, so the output is
byte-stable. Every cell and header passes through :func:`~pmrl_bench.leaderboard.md.cell`: strings from result
files are escaped, markup made here (:class:`~pmrl_bench.leaderboard.md.Markdown`) is kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pmrl_bench.leaderboard.data import MAIN_VIEW, Run
from pmrl_bench.results.schema import NOT_APPLICABLE
from pmrl_bench.leaderboard.md import Markdown, cell, code
from pmrl_bench.leaderboard.stats import (
    Interval, RankStatistic, bootstrap_over_seeds, bootstrap_over_seeds_and_queries, interval_ranks, mean_std_cv,
    median_rank, recall_at,
)
from pmrl_bench.run_marks import run_marks

RETRIEVAL_METRICS = ("R@1", "R@5", "R@10", "MdR")
HIGHER_IS_BETTER = {"R@1": True, "R@5": True, "R@10": True, "MdR": False}
SEED_ONLY_MARK = "†"
# The rank cell of a row that is shown for reference (step 0, a baseline that does not train) and never ranked.
REFERENCE_RANK = "ref"
DETAIL_HEADERS = ("R@1 min..max", "marks")
MARKS_NOTE = (
    "`R@1 min..max`: the lowest and highest mean R@1 of a single seed (over the seeds that finished). `marks`: how "
    "many finished seeds did not train (`inert`: the training loss never moved or the gradient norm stayed "
    "negligible: no training signal, so read its numbers against step 0) and how many had a modality collapse "
    "(`collapsed`, with the modalities: effective rank of its test embeddings near 1, or R@10 at or below chance "
    "in every direction); `none`: neither. `ref` rows are shown for reference and never ranked: step 0 (the "
    "encoders every objective of a seed started from) and baselines that do not train."
)


def markdown(rows: list[list[str]], headers: list[str]) -> str:
    """A table; plain strings are escaped (one line, no stray ``|``, no HTML), :class:`Markdown` is kept."""
    body = [[cell(value) for value in row] for row in rows]
    return pd.DataFrame(body, columns=[cell(h) for h in headers]).to_markdown(index=False, disable_numparse=True)


def seeds_cell(runs: Sequence[Run]) -> str:
    """``3/3``, ``2/3 (1 diverged)``; ``not applicable`` for a configuration the task's modality count rules out."""
    counted = [r for r in runs if r.status != NOT_APPLICABLE]
    if runs and not counted:
        return "not applicable"
    counts = {s: sum(1 for r in counted if r.status == s) for s in ("ok", "diverged", "failed")}
    text = f"{counts['ok']}/{len(counted)}"
    problems = [f"{counts[s]} {s}" for s in ("diverged", "failed") if counts[s]]
    return f"{text} ({', '.join(problems)})" if problems else text


def seed_means(runs: Sequence[Run], view: str, directions: Sequence[str] | None, metric: str = "R@1") -> list[float]:
    """Per finished seed: ``metric`` averaged over ``directions`` (None: each run's own) of ``view``."""
    values = []
    for run in runs:
        scores = run.views.get(view, {})
        wanted = sorted(scores) if directions is None else directions
        if run.status == "ok" and wanted and all(d in scores and metric in scores[d] for d in wanted):
            values.append(float(np.mean([scores[d][metric] for d in wanted])))
    return values


def spread_cell(runs: Sequence[Run], view: str, directions: Sequence[str] | None) -> str:
    """``13.4..44.2``: the lowest and highest per-seed mean R@1 in %, over the seeds that finished."""
    values = seed_means(runs, view, directions)
    return f"{100 * min(values):.1f}..{100 * max(values):.1f}" if values else "–"


def marks_cell(runs: Sequence[Run]) -> str:
    """How many finished seeds did not train (inert) or had a modality collapse (with which modalities):
    ``inert 3/3``, ``collapsed 2/3 (fou)``, ``none``; ``–`` when no seed finished."""
    marks = [run_marks(r.result) for r in runs if r.status == "ok"]
    if not marks:
        return "–"
    found = []
    inert = sum(m.inert for m in marks)
    if inert:
        found.append(f"inert {inert}/{len(marks)}")
    collapsed = [m.collapsed for m in marks if m.collapsed]
    if collapsed:
        modalities = ", ".join(sorted({name for names in collapsed for name in names}))
        found.append(f"collapsed {len(collapsed)}/{len(marks)} ({modalities})")
    return "; ".join(found) if found else "none"


@dataclass(frozen=True)
class SeedDetail:
    """Two columns at the end of a table: the per-seed spread of mean R@1 over ``directions`` of ``view`` (None: each
    row's own directions), and the run marks (:mod:`pmrl_bench.run_marks`)."""

    view: str
    directions: Sequence[str] | None

    def cells(self, runs: Sequence[Run], reference: bool) -> list[str]:
        return [spread_cell(runs, self.view, self.directions), "–" if reference else marks_cell(runs)]


def by_label(runs: Sequence[Run]) -> dict[str, list[Run]]:
    rows: dict[str, list[Run]] = {}
    for run in runs:
        rows.setdefault(run.label, []).append(run)
    return dict(sorted(rows.items()))


@dataclass
class Cell:
    mean: float
    std: float
    interval: Interval | None
    seed_only: bool  # the interval is a bootstrap over seeds (no per-query ranks)


def _format_value(value: float, percent: bool) -> str:
    return f"{value * 100:.1f}" if percent else f"{value:.2f}"


def format_cell(value: Cell, percent: bool, bold: bool, mark_seed_only: bool) -> str:
    if math.isnan(value.mean):
        return "–"
    text = f"{_format_value(value.mean, percent)} ± {_format_value(value.std, percent)}"
    if value.interval is not None:
        lo, hi = value.interval
        text += f" [{_format_value(lo, percent)}, {_format_value(hi, percent)}]"
    if mark_seed_only and value.seed_only:
        text += SEED_ONLY_MARK
    return Markdown(f"**{text}**" if bold else text)  # numbers and brackets made here: nothing to escape


def _statistic(metric: str) -> RankStatistic:
    return median_rank if metric == "MdR" else recall_at(int(metric.split("@")[1]))


def retrieval_cell(runs: Sequence[Run], view: str, directions: Sequence[str] | None, metric: str) -> Cell:
    """Mean over ok seeds of ``metric`` averaged over ``directions``, with its 95% interval.

    ``directions=None`` takes the directions this row's runs have (views whose directions differ by objective).
    """
    if directions is None:
        directions = sorted({d for r in runs if r.status == "ok" for d in r.views.get(view, {})})
        if not directions:
            return Cell(float("nan"), float("nan"), None, True)
    ok = [r for r in runs if r.status == "ok" and all(d in r.views.get(view, {}) for d in directions)]
    values = [float(np.mean([r.views[view][d][metric] for d in directions])) for r in ok]
    mean, std, _ = mean_std_cv(values)
    if not ok:
        return Cell(mean, std, None, True)
    if all(d in r.ranks.get(view, {}) for r in ok for d in directions):
        per_seed = [np.stack([r.ranks[view][d] for d in directions]) for r in ok]
        interval = bootstrap_over_seeds_and_queries(per_seed, _statistic(metric))
        if interval is not None:
            return Cell(mean, std, interval, False)
    return Cell(mean, std, bootstrap_over_seeds(values), True)


def scalar_cell(runs: Sequence[Run], value: Callable[[Run], float | None]) -> Cell:
    """Mean over ok seeds of a per-run scalar, with a bootstrap-over-seeds interval."""
    values = [v for v in (value(r) for r in runs if r.status == "ok") if v is not None and np.isfinite(v)]
    mean, std, _ = mean_std_cv(values)
    return Cell(mean, std, bootstrap_over_seeds(values), True)


@dataclass
class Column:
    header: str
    cells: dict[str, Cell]  # label -> cell
    higher_is_better: bool
    percent: bool

    def ranks(self, exclude: Collection[str] = ()) -> dict[str, int]:
        """Ranks by interval overlap among the cells, leaving out the rows in ``exclude`` (reference rows)."""
        cells = {label: c for label, c in self.cells.items() if label not in exclude}
        return interval_ranks(
            {label: c.interval for label, c in cells.items()},
            {label: c.mean for label, c in cells.items()},
            self.higher_is_better,
        )


def ranked_table(rows: dict[str, list[Run]], columns: Sequence[Column], rank_by: Column | None = None,
                 ranks: Mapping[str, int] | None = None, tail: Sequence[list[str]] = (),
                 references: Collection[str] = (), detail: SeedDetail | None = None) -> tuple[str, bool]:
    """Rows = configurations. Each column bolds its rank-1 cells (best, and any tied with it), by interval overlap.

    ``ranks`` (e.g. from paired significance tests) replaces that: it fills a ``rank`` column, orders the rows, and
    bolds the rank-1 cells of the first column only (the column the ranks are about). Returns the markdown and
    whether some cells used the seed-only interval while others did not (then those cells carry the † mark).
    ``references``: labels of ``rows`` shown for reference (step 0): never ranked nor bold, after the ranked rows.
    ``detail``: add the per-seed spread and run-mark columns at the end.
    ``tail``: finished rows (cells as written) put last, e.g. configurations that are not applicable.
    """
    mixed = any(
        len({c.seed_only for c in col.cells.values() if c.interval is not None}) > 1 for col in columns
    )
    if ranks is not None:
        column_ranks = [dict(ranks)] + [{} for _ in columns[1:]]
        overall: Mapping[str, int] | None = ranks
    else:
        column_ranks = [col.ranks(references) for col in columns]
        overall = rank_by.ranks(references) if rank_by is not None else None
    body, reference_body = [], []
    for label, runs in rows.items():
        reference = label in references
        cells = [
            format_cell(col.cells[label], col.percent, bold=not reference and ranks.get(label) == 1,
                        mark_seed_only=mixed)
            for col, ranks in zip(columns, column_ranks)
        ]
        rank = REFERENCE_RANK if reference else str(overall[label]) if overall and label in overall else "–"
        lead = [rank] if overall is not None else []
        extra = detail.cells(runs, reference) if detail is not None else []
        (reference_body if reference else body).append([*lead, code(label), seeds_cell(runs), *cells, *extra])
    if overall is not None:
        body.sort(key=lambda row: (int(row[0]) if row[0] != "–" else 10**9, row[1]))
    body += reference_body + [list(row) for row in tail]
    headers = (["rank"] if overall is not None else []) + ["objective", "seeds ok"]
    headers += [f"{c.header} {'↑' if c.higher_is_better else '↓'}" for c in columns]
    headers += list(DETAIL_HEADERS) if detail is not None else []
    return markdown(body, headers), mixed


def retrieval_columns(rows: dict[str, list[Run]], view: str, directions: Sequence[str] | None) -> list[Column]:
    """The summary columns: every metric averaged over the view's directions (None: each row's own)."""
    return [
        Column(f"mean {m}", {label: retrieval_cell(runs, view, directions, m) for label, runs in rows.items()},
               HIGHER_IS_BETTER[m], m != "MdR")
        for m in RETRIEVAL_METRICS
    ]


def direction_columns(rows: dict[str, list[Run]], view: str, directions: Sequence[str], metric: str,
                      own_mean: bool = False) -> list[Column]:
    columns = [
        Column(d.replace("->", "→"), {label: retrieval_cell(runs, view, [d], metric) for label, runs in rows.items()},
               HIGHER_IS_BETTER[metric], metric != "MdR")
        for d in directions
    ]
    mean_over = None if own_mean else directions
    columns.append(Column("mean",
                          {label: retrieval_cell(runs, view, mean_over, metric) for label, runs in rows.items()},
                          HIGHER_IS_BETTER[metric], metric != "MdR"))
    return columns


def main_rank_column(runs: Sequence[Run]) -> Column | None:
    """The column every rank is taken from: mean R@1 over the cosine directions."""
    rows = by_label(runs)
    directions = sorted({d for r in runs for d in r.views.get(MAIN_VIEW, {})})
    if not directions:
        return None
    return Column("mean R@1", {label: retrieval_cell(rs, MAIN_VIEW, directions, "R@1") for label, rs in rows.items()},
                  True, True)


# ---- stability: rows are metrics, columns are configurations ----

@dataclass(frozen=True)
class StabilityRow:
    key: str  # "monitor/key[/sub]" in Run.stability, or a callable name for derived rows
    name: str
    meaning: str
    fmt: str = "sig"  # "sig": 3 significant digits of the mean, std to the same decimals; or a fixed format
    total: bool = False  # counts: the sum over every run (diverged ones included), not a mean over ok runs
    warn_negative: bool = False


def _number(value: float, fmt: str) -> str:
    text = format(value, fmt)
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _number_pair(mean: float, std: float, fmt: str) -> tuple[str, str]:
    """Mean and std with the same decimals: fixed by ``fmt`` when it is fixed-point, else 3 significant digits of
    the mean."""
    if fmt.endswith("f"):
        return _number(mean, fmt), _number(std, fmt)
    magnitude = math.floor(math.log10(abs(mean))) if mean != 0 else 0
    decimals = min(6, max(0, 2 - magnitude))
    return _number(mean, f".{decimals}f"), _number(std, f".{decimals}f")


def stability_cell(runs: Sequence[Run], row: StabilityRow) -> str:
    if row.total:
        values = [r.stability[row.key] for r in runs if row.key in r.stability]
        return "–" if not values else f"{_number(sum(values), 'g')} in {len(values)} runs"
    values = [r.stability[row.key] for r in runs if r.status == "ok" and row.key in r.stability]
    mean, std, cv = mean_std_cv(values)
    if math.isnan(mean):
        return "–"
    mean_text, std_text = _number_pair(mean, std, row.fmt)
    text = f"{mean_text} ± {std_text}"
    if len(values) > 1 and not math.isnan(cv):
        text += f" (CV {cv * 100:.0f}%)"
    if row.warn_negative and mean < 0:
        text = f"⚠ {text}"
    return text


def stability_table(rows: dict[str, list[Run]], spec: Sequence[StabilityRow]) -> str:
    labels = list(rows)
    body = []
    for row in spec:
        cells = [stability_cell(rows[label], row) for label in labels]
        if all(c == "–" for c in cells):
            continue
        body.append([row.name, *cells, row.meaning])
    if not body:
        return ""
    return markdown(body, ["metric", *(code(label) for label in labels), "what it says"])
