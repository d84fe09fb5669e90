"""How the objectives fare as the number of modalities k grows: one page and one plot from the runs of the same
default configurations at several modality counts (``pmrl-bench leaderboard RESULTS --modality-sweep DIR``).

A task's runs are grouped by k (the number of modalities a run encoded, i.e. its encoders) and by protocol. Only
default configurations take part (a tuned configuration was tuned at one k). For every k the planned comparisons of
the verdicts page are made again (each objective against the reference objectives, seed by seed), and corrected
together over the whole page with Holm: this page is its own family, apart from the verdicts page's. An objective
that does not accept a modality count shows a dash.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from pmrl_bench.composite import display_name
from pmrl_bench.leaderboard.md import code, text
from pmrl_bench.leaderboard.plots import scaling_figure
from pmrl_bench.leaderboard.seed_test import ALPHA, verdict
from pmrl_bench.leaderboard.tables import markdown
from pmrl_bench.leaderboard.verdicts import REFERENCES, Planned, comparison_cells, planned_comparisons, verdict_cell
from pmrl_bench.results import RunResult
from pmrl_bench.results.schema import NOT_APPLICABLE

PAGE = "modality-scaling.md"
PLOT = "modality-scaling.png"
SEPARATOR = " · k="  # joins a task's name and its modality count into the name the planned comparisons group by


def modality_count(result: RunResult) -> int:
    """The number of modalities a run encoded (one encoder per modality), recorded even for a run not applicable."""
    return len(result.params.get("encoders") or {})


def _default(result: RunResult) -> bool:
    return not result.tuning


def sweep_results(results: Sequence[RunResult], sweep: Sequence[RunResult]) -> list[RunResult]:
    """The default-configuration runs of the tasks seen at two or more modality counts, each renamed
    ``<task> · k=<k>`` so that every modality count is a task of its own for the comparisons."""
    pooled = [r for r in (*results, *sweep) if _default(r)]
    counts: dict[str, set[int]] = {}
    for r in pooled:
        counts.setdefault(r.task, set()).add(modality_count(r))
    return [r.model_copy(update={"task": f"{r.task}{SEPARATOR}{modality_count(r)}"})
            for r in pooled if len(counts[r.task]) > 1]


def _split(name: str) -> tuple[str, int]:
    task, _, k = name.rpartition(SEPARATOR)
    return task, int(k)


def _means(renamed: Sequence[RunResult]) -> dict[tuple[str, str], dict[str, dict[int, tuple[float, float, int]]]]:
    """``{(task, protocol): {objective: {k: (mean %, sd %, ok seeds)}}}`` of mean cosine R@1; a count an objective
    does not accept maps to NaN with 0 seeds."""
    scores: dict[tuple[str, str, str, int], list[float]] = {}
    for r in renamed:
        task, k = _split(r.task)
        key = (task, r.protocol, r.objective, k)
        scores.setdefault(key, [])
        if r.status == "ok" and r.metrics.retrieval:
            scores[key].append(100 * float(np.mean([d["R@1"] for d in r.metrics.retrieval.values()])))
    out: dict[tuple[str, str], dict[str, dict[int, tuple[float, float, int]]]] = {}
    for (task, protocol, objective, k), values in sorted(scores.items()):
        mean = float(np.mean(values)) if values else math.nan
        sd = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
        out.setdefault((task, protocol), {}).setdefault(objective, {})[k] = (mean, sd, len(values))
    return out


def _mean_table(by_objective: Mapping[str, Mapping[int, tuple[float, float, int]]], ks: Sequence[int]) -> str:
    body = []
    for objective, cells in sorted(by_objective.items()):
        row = [code(display_name(objective))]
        for k in ks:
            mean, sd, n = cells.get(k, (math.nan, math.nan, 0))
            row.append("–" if n == 0 else f"{mean:.1f} ± {0.0 if math.isnan(sd) else sd:.1f} ({n})")
        body.append(row)
    return markdown(body, ["objective", *(f"k = {k}" for k in ks)])


def _verdict_table(planned: Sequence[Planned], alpha: float) -> str:
    body = [[str(_split(p.task)[1]), code(display_name(p.a.objective)), code(display_name(p.b.objective)),
             *comparison_cells(p.comparison), text(verdict_cell(p.comparison, verdict(p.comparison, alpha), p.marks))]
            for p in sorted(planned, key=lambda p: (_split(p.task)[1], p.b.objective, p.a.objective))]
    return markdown(body, ["k", "objective", "reference", "Δ mean R@1 (points) [95% t-interval]",
                           "per-seed Δ min..max", "seeds agreeing", "p (t over seeds)", "sign-flip p", "Holm p",
                           "verdict"])


def _task_params(renamed: Sequence[RunResult], task: str) -> dict[int, str]:
    """What the task was given at each k, e.g. ``views=pix,fou``: the task parameters that vary over k."""
    params: dict[int, dict[str, object]] = {}
    for r in renamed:
        name, k = _split(r.task)
        if name == task:
            params.setdefault(k, dict(r.params.get("task") or {}))
    varying = sorted({key for p in params.values() for key in p
                      if len({repr(q.get(key)) for q in params.values()}) > 1})
    return {k: ", ".join(f"{key}={params[k].get(key)}" for key in varying) for k in sorted(params)}


def scaling_page(renamed: Sequence[RunResult], planned: Sequence[Planned], references: Sequence[str],
                 alpha: float = ALPHA) -> str:
    means = _means(renamed)
    tested = sum(p.comparison.p_value is not None for p in planned)
    lines = ["# Scaling with the number of modalities", "",
             "Generated from result files by `pmrl-bench leaderboard --modality-sweep`; do not edit by hand.", "",
             "The same default configurations (encoders, budget, seeds and protocol) trained on one task given "
             "k modalities; only k changes. Cells: mean cosine R@1 in % ± its standard deviation over the seeds "
             "that finished, and (in brackets) how many did; a dash: the objective does not accept k modalities.", "",
             f"Verdicts: each objective against the references ({', '.join(f'`{r}`' for r in references)}) at every "
             f"k, default against default, by a paired t-test over seeds, Holm-corrected once over the {tested} "
             f"comparisons of this page (its own family, apart from the verdicts page's), α = {alpha}; \"beats\" "
             "and \"loses to\" also need 70 % of the seeds to agree in sign; \"no detectable difference\" gives the "
             "smallest difference the seeds could have detected.", "",
             f"![mean R@1 against the number of modalities]({PLOT})", ""]
    for (task, protocol), by_objective in means.items():
        ks = sorted({k for cells in by_objective.values() for k in cells})
        given = _task_params(renamed, task)
        lines += [f"## `{task}`, protocol `{protocol}`", "",
                  "Modalities per k: " + "; ".join(f"k = {k}: {text(given[k]) or 'default'}" for k in ks) + ".", "",
                  _mean_table(by_objective, ks), "",
                  _verdict_table([p for p in planned if _split(p.task)[0] == task and p.protocol == protocol],
                                 alpha), ""]
    return "\n".join(lines)


def scaling_files(results: Sequence[RunResult], sweep: Sequence[RunResult], references: Sequence[str] = REFERENCES,
                  plots: bool = True, alpha: float = ALPHA) -> dict[str, str | bytes]:
    """``{PAGE: markdown, PLOT: png}`` (the plot only with ``plots`` and matplotlib), or ``{}`` when no task was run
    at two modality counts."""
    renamed = sweep_results(results, sweep)
    if not renamed:
        return {}
    present = {r.objective for r in renamed}
    planned = planned_comparisons([r for r in renamed if r.status != NOT_APPLICABLE],
                                  [ref for ref in references if ref in present], alpha)
    files: dict[str, str | bytes] = {PAGE: scaling_page(renamed, planned, references, alpha)}
    figure = scaling_figure(_means(renamed), display_name) if plots else None
    if figure is not None:
        files[PLOT] = figure
    return files
