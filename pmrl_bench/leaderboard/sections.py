"""The sections of a task page, each for the configurations of one protocol: retrieval (ranked by paired tests),
the pairwise comparison, the change from step 0, classification, robustness, cost, loss terms and stability.

Every function takes ``rows`` (``{label: runs}``, one protocol) and returns markdown lines.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from pmrl_bench.baselines.record import BaselineResult
from pmrl_bench.leaderboard.data import MAIN_VIEW, Run
from pmrl_bench.leaderboard.md import code, image, link, text
from pmrl_bench.leaderboard.plots import plot_names, plots_with_data
from pmrl_bench.leaderboard.protocols import INIT_PREFIX, ProtocolGroup, step0_changes, step0_table
from pmrl_bench.leaderboard.seed_test import MIN_AGREE, MIN_SEEDS, SeedComparison, verdict
from pmrl_bench.leaderboard.significance import ALPHA, format_p, paired_test, seed_pairwise, seed_ranks
from pmrl_bench.leaderboard.stability_rows import OPTIMISATION_ROWS, SEEDS_ROWS, SINGULAR_ROWS, representation_rows
from pmrl_bench.leaderboard.stats import MAX_BOOTSTRAP_QUERIES
from pmrl_bench.leaderboard.tables import (
    SEED_ONLY_MARK, Column, direction_columns, format_cell, markdown, ranked_table, retrieval_columns,
    scalar_cell, seeds_cell, stability_table,
)
from pmrl_bench.leaderboard.tables import MARKS_NOTE, SeedDetail
from pmrl_bench.leaderboard.verdicts import PAGE, comparison_cells, verdict_cell

RETRIEVAL_CI = (
    "Intervals: a two-stage bootstrap: seeds resampled, and test queries resampled within each "
    "seed, so they cover both training noise and test-set sampling."
)
SEED_CI = "Intervals here are a bootstrap over seeds (the seed is the unit; per-instance predictions are not stored)."
MIXED_CI = (f"Cells marked {SEED_ONLY_MARK} lack per-query ranks (or rank more than {MAX_BOOTSTRAP_QUERIES} queries), "
            "so their interval is a bootstrap over seeds only.")
RANK_NOTE = (
    "`rank`: 1 + the number of configurations significantly better on mean R@1 by a paired t-test over seeds (the "
    f"training run is the unit; Holm-corrected over every pair of this table, α = {ALPHA}, and at least "
    f"{MIN_AGREE:.0%} of the seeds agreeing in sign; pairs with fewer than {MIN_SEEDS} seeds in common are not "
    "tested). Equal ranks mean no detectable difference, not equality. An exploratory ranking: the planned "
    "comparisons against the reference objectives are on the verdicts page. **Bold**: rank 1. The other columns "
    "are not ranked."
)
# Beyond this many configurations, the pairwise table lists each one against the best and against its neighbour
# in the ranking, not every pair.
FULL_PAIRWISE = 8


def view_title(view: str) -> str:
    if view == MAIN_VIEW:
        return "cosine"
    return view.removeprefix("retrieval_").replace("_", " ")


def interval_note(columns: Sequence[Column]) -> str:
    """Which bootstrap this view's intervals come from (all cells of a view share their source of ranks)."""
    kinds = {c.seed_only for col in columns for c in col.cells.values() if c.interval is not None}
    if kinds == {False}:
        return RETRIEVAL_CI
    if kinds == {True}:
        return ("Intervals: a bootstrap over seeds (these results store no per-query ranks for this view, or rank "
                f"more than {MAX_BOOTSTRAP_QUERIES} queries).")
    return MIXED_CI


def main_ranks(rows: Mapping[str, Sequence[Run]]) -> tuple[dict[str, int], list[SeedComparison]]:
    """Ranks on mean cosine R@1 by the seed-level comparison of every pair (Holm over the pairs of the table), and
    the comparisons. A pair with fewer than three seeds in common is not tested and separates no one."""
    tests = seed_pairwise(rows)
    return seed_ranks(tests, list(rows)), tests


def retrieval_sections(rows: Mapping[str, Sequence[Run]], ranks: Mapping[str, int], level: str = "###",
                       not_applicable: Mapping[str, Sequence[Run]] | None = None, references: Collection[str] = (),
                       baselines: Sequence[BaselineResult] = ()) -> list[str]:
    """A section per retrieval view; configurations ``not_applicable`` to the task close the main table as dashes.
    ``references`` (step 0) and ``baselines`` (linear CCA, cosine view only) are shown unranked."""
    from pmrl_bench.leaderboard import not_applicable as na
    from pmrl_bench.leaderboard.baselines import baseline_rows, direction_rows

    skipped = not_applicable or {}
    runs = [r for rs in rows.values() for r in rs]
    views = sorted({v for r in runs for v in r.views}, key=lambda v: (v != MAIN_VIEW, v))
    lines: list[str] = []
    for view in views:
        view_rows = {label: rs for label, rs in rows.items() if any(r.views.get(view) for r in rs)}
        directions = sorted({d for r in runs for d in r.views.get(view, {})})
        lines += [f"{level} Retrieval ({text(view_title(view))}), R@K in %", ""]
        if view != MAIN_VIEW:
            lines += [f"Another retrieval view found in the results ({code(f'metrics[{json.dumps(view)}]')}): the same "
                      "runs and test instances, scored as that view defines.", ""]
        # Views other than cosine may give each objective its own directions (e.g. a native score anchored on
        # one modality): their means are over each row's own directions.
        own = view != MAIN_VIEW and len({frozenset(r.views.get(view, {})) for r in runs if r.views.get(view)}) > 1
        summary = retrieval_columns(view_rows, view, None if own else directions)
        lines += [interval_note(summary), ""]
        if view == MAIN_VIEW:
            detail = SeedDetail(view, directions)
            tail = baseline_rows(baselines, directions) + na.dash_rows(skipped, len(summary) + 2)
            table, _ = ranked_table(view_rows, summary, ranks=ranks, tail=tail, references=references, detail=detail)
            lines += [RANK_NOTE, "", MARKS_NOTE, "", table, ""]
            lines += [*na.reasons(skipped), ""] if skipped else []
        else:
            table, _ = ranked_table(view_rows, summary, references=references)
            lines += ["Mean over each row's own directions (they differ by objective). " if own
                      else f"Mean over the {len(directions)} directions. ",
                      "**Bold**: no other row's interval lies entirely above (below, for ↓).", "", table, ""]
        per_direction, _ = ranked_table(view_rows, direction_columns(view_rows, view, directions, "R@1", own_mean=own),
                                        references=references,
                                        tail=direction_rows(baselines, directions) if view == MAIN_VIEW else ())
        lines += [f"R@1 per direction (query → gallery) of the {text(view_title(view))} view:", "", per_direction, ""]
    if MAIN_VIEW not in views:  # nothing trained here to put them beside
        lines += na.section(skipped, level)
    return lines


def pairwise_section(rows: Mapping[str, Sequence[Run]], ranks: Mapping[str, int], tests: Sequence[SeedComparison],
                     level: str = "###") -> list[str]:
    """The comparisons behind the ranks: every pair (few configurations) or each against the best and its neighbour
    in the ranking; the seed-level Δ, interval, spread, agreement and p first, the query-level p beside them."""
    if len(rows) < 2:
        return []
    order = sorted(rows, key=lambda label: (ranks.get(label, 10**9), label))
    if len(rows) <= FULL_PAIRWISE:
        shown = [(a, b) for i, a in enumerate(order) for b in order[i + 1:]]
        scope = "every pair"
    else:
        best = order[0]
        shown = list(dict.fromkeys([(best, b) for b in order[1:]] + list(zip(order[1:], order[2:]))))
        scope = "each configuration against the best-ranked one and against its neighbour in the ranking"
    by_pair = {frozenset((t.a, t.b)): t for t in tests}
    body = []
    for a, b in shown:
        c = by_pair[frozenset((a, b))]
        query_level = paired_test(rows[c.a], rows[c.b], c.a, c.b, interval=False)
        body.append([code(c.a), code(c.b), *comparison_cells(c), text(verdict_cell(c, verdict(c))),
                     format_p(query_level.p_value)])
    headers = ["A", "B", "Δ mean R@1 (A − B, points) [95% t-interval]", "per-seed Δ min..max", "seeds agreeing",
               "p (t over seeds)", "sign-flip p", "p (Holm)", "verdict", "query-level p (given these trained models)"]
    return [f"{level} Pairwise comparison (paired, mean cosine R@1)", "",
            f"Exploratory, uncorrected for the planned family; verdicts: {link(PAGE, PAGE)}.", "",
            f"Listed: {scope}. Δ = A − B in points, one difference per seed both finished, with a 95% t-interval over "
            "the seeds; p: paired t-test over seeds, Holm-corrected over every pair of this protocol's table; "
            "sign-flip p: the exact sign-flip test over seeds; the verdict also needs at least "
            f"{MIN_AGREE:.0%} of the seeds to agree in sign. Query-level p: sign flips over test queries on the "
            "seed-averaged differences, uncorrected; it takes the trained models as given, so it speaks of "
            "test-set sampling only, not of training noise.", "",
            markdown(body, headers), ""]


def step0_section(rows: Mapping[str, Sequence[Run]], level: str = "###") -> list[str]:
    configurations = {label: rs for label, rs in rows.items() if not label.startswith(INIT_PREFIX)}
    tests = step0_changes(configurations)
    if not tests:
        return []
    return [f"{level} What each objective does to the representation it was handed", "",
            "Final mean cosine R@1 against the same runs at step 0 (the init stage's encoders), paired on the same "
            "seeds and test queries; `improves` / `degrades`: significant after Holm over the configurations "
            f"(α = {ALPHA}); `preserves`: no significant change.", "",
            step0_table(configurations, tests), ""]


def classification_section(rows: Mapping[str, Sequence[Run]], level: str = "###",
                           references: Collection[str] = ()) -> list[str]:
    probes = sorted({p for rs in rows.values() for r in rs for p in r.classification})
    if not probes:
        return []
    columns = [
        Column(p, {label: scalar_cell(rs, lambda r, p=p: r.classification.get(p)) for label, rs in rows.items()},
               True, True)
        for p in probes
    ]
    table, _ = ranked_table(dict(rows), columns, references=references)
    return [f"{level} Classification (accuracy %, probes on frozen embeddings)", "", SEED_CI,
            "**Bold**: no other row's interval lies entirely above (the step-0 row is not ranked).",
            *step0_probe_note(rows, references, probes), "", table, ""]


def step0_probe_note(rows: Mapping[str, Sequence[Run]], references: Collection[str],
                     probes: Sequence[str]) -> list[str]:
    """What the step-0 row of the classification table is for, and which probes it lacks (and why)."""
    present = [label for label in references if label in rows]
    if not present:
        return []
    lines = [f"Read each probe against the {code(present[0])} row: a probe on frozen embeddings already scores "
             "well on the encoders before training, so what training adds is the difference from step 0."]
    missing = [p for p in probes if not any(p in r.classification for label in present for r in rows[label])]
    if missing:
        lines.append(f"Step 0 shows – for {', '.join(code(p) for p in missing)}: "
                     "the evaluation of the starting encoders (`metrics_at_init`) runs the fused probes only.")
    return lines


def _robustness(run: Run) -> Mapping[str, object]:
    value = run.result.robustness
    return value if isinstance(value, Mapping) else {}


def _percent_cell(runs: Sequence[Run], value) -> str:  # noqa: ANN001 - Callable[[Run], float | None]
    return format_cell(scalar_cell(runs, value), percent=True, bold=False, mark_seed_only=False)


def robustness_section(rows: Mapping[str, Sequence[Run]], stem: str, level: str = "###") -> list[str]:
    """A modality missing (retrieval and fused probe without it), and one modality's inputs made noisy."""
    configs = {label: rs for label, rs in rows.items() if any(_robustness(r) for r in rs)}
    if not configs:
        return []
    lines = [f"{level} Robustness", "",
             "Computed on the test split by the final evaluation. "
             "Mean ± std over seeds [bootstrap over seeds], in %.", ""]
    missing = sorted({m for rs in configs.values() for r in rs
                      for m in (_robustness(r).get("missing_modality", {}) or {}).get("mean_R@1", {})})
    if missing:
        body = []
        for label, rs in configs.items():
            full = _percent_cell(rs, lambda r: _mean_r1(r.views.get("retrieval_multimodal", {})))
            cells = [_percent_cell(rs, lambda r, m=m: _get(r, "missing_modality", "mean_R@1", m)) for m in missing]
            probes = [_percent_cell(rs, lambda r, m=m: _get(r, "missing_modality", "linear:fused", m)) for m in missing]
            body.append([code(label), seeds_cell(rs), full, *cells, *probes])
        headers = ["configuration", "seeds ok", "all modalities: mean R@1 vs fusion",
                   *(f"without {m}: mean R@1" for m in missing), *(f"without {m}: fused linear probe" for m in missing)]
        lines += ["Missing modality: each remaining modality against the fusion (normalised mean) of the other "
                  "remaining ones, both ways, and the fused linear probe, with one modality left out of the fusion "
                  "(the first column keeps them all).", "", markdown(body, headers), ""]
    levels = _noise_levels(configs)
    if levels:
        body = [[code(label), seeds_cell(rs),
                 *(_percent_cell(rs, lambda r, i=i: _noise(r, None, i)) for i in range(len(levels)))]
                for label, rs in configs.items()]
        headers = ["configuration", "seeds ok", *(f"noise {level:g}× scale" for level in levels)]
        lines += ["Noisy modality: Gaussian noise of the given multiple of a modality's per-feature standard deviation "
                  "(train split) added to its inputs; R@1 over the directions involving that modality, averaged over "
                  "the modalities (token-id inputs are left out).", "", markdown(body, headers), ""]
        if "robustness" in plots_with_data([r for rs in configs.values() for r in rs]):
            lines += [image("mean R@1 against the noise level", plot_names(stem)["robustness"]), ""]
    return lines


def _mean_r1(view: Mapping[str, Mapping[str, float]]) -> float | None:
    values = [s["R@1"] for s in view.values() if "R@1" in s]
    return float(np.mean(values)) if values else None


def _get(run: Run, block: str, key: str, modality: str) -> float | None:
    value = (_robustness(run).get(block, {}) or {}).get(key, {})
    found = value.get(modality) if isinstance(value, Mapping) else None
    return float(found) if isinstance(found, (int, float)) else None


def _noise_levels(rows: Mapping[str, Sequence[Run]]) -> list[float]:
    found = {tuple(_robustness(r).get("noise", {}).get("levels", ()) or ()) for rs in rows.values() for r in rs}
    found.discard(())
    return list(found.pop()) if len(found) == 1 else []


def _noise(run: Run, modality: str | None, index: int) -> float | None:
    block = _robustness(run).get("noise", {}) or {}
    values = block.get("mean_R@1") if modality is None else (block.get("R@1") or {}).get(modality)
    if not isinstance(values, list) or index >= len(values) or values[index] is None:
        return None
    return float(values[index])


def cost_section(rows: Mapping[str, Sequence[Run]], level: str = "###") -> list[str]:
    configs = {label: rs for label, rs in rows.items() if any(r.result.cost for r in rs)}
    if not configs:
        return []

    def plain(runs: Sequence[Run], value, fmt: str) -> str:  # noqa: ANN001
        values = [v for v in (value(r) for r in runs) if isinstance(v, (int, float))]
        if not values:
            return "–"
        return format(float(np.median(values)), fmt)

    body = []
    memory = sorted({str(r.result.cost.get("memory", "device")) for rs in configs.values() for r in rs
                     if r.result.cost})
    for label, rs in configs.items():
        body.append([code(label), seeds_cell(rs),
                     plain(rs, lambda r: _part(r, "encoders"), ",.0f"),
                     plain(rs, lambda r: _part(r, "objective"), ",.0f"),
                     plain(rs, lambda r: r.result.cost.get("ms_per_step"), ".2f"),
                     plain(rs, lambda r: _megabytes(r.result.cost.get("peak_memory_bytes")), ",.0f")])
    headers = ["configuration", "seeds ok", "trainable params (encoders)", "trainable params (objective)",
               "ms per step (median)", "peak memory MB"]
    what = {"process_rss": "the process's resident memory (CPU runs: interpreter, data and models together)",
            "cuda_max_allocated": "device memory allocated by torch (CUDA runs)"}
    described = "; ".join(what.get(m, m) for m in memory)
    return [f"{level} Cost", "", f"Median over the runs (diverged ones included). Memory: {text(described)}. "
            "Step times are wall-clock and depend on the machine and its load.", "", markdown(body, headers), ""]


def _part(run: Run, part: str) -> object:
    parts = run.result.cost.get("params_by_part")
    return parts.get(part) if isinstance(parts, Mapping) else None


def _megabytes(value: object) -> float | None:
    return value / 1024**2 if isinstance(value, (int, float)) else None


def terms_section(rows: Mapping[str, Sequence[Run]], level: str = "###") -> list[str]:
    """The final value of each loss term (mean ± std over ok seeds): what each objective's parts converged to."""
    body = []
    for label, rs in rows.items():
        finals = [r.result.stability.get("optimisation", {}).get("terms_final") or {} for r in rs if r.status == "ok"]
        names = sorted({n for f in finals for n in f})
        for name in names:
            values = [float(f[name]) for f in finals if isinstance(f.get(name), (int, float))]
            if values:
                std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
                body.append([code(label), text(name), f"{np.mean(values):.4g} ± {std:.2g}"])
    if not body:
        return []
    return [f"{level} Loss terms at the end of training", "",
            "Each term the objective reports (its `terms`), at the last step, mean ± std over the seeds that finished; "
            "curves per probe interval are in the result files (`stability.optimisation.curves`). Not comparable "
            "across objectives.", "", markdown(body, ["configuration", "term", "final value"]), ""]


def stability_section(stem: str, rows: Mapping[str, Sequence[Run]], level: str = "###") -> list[str]:
    runs = [r for rs in rows.values() for r in rs]
    lines = [f"{level} Stability", "",
             "Mean ± std over the seeds that finished, with the coefficient of variation (CV = std/|mean|) "
             "across seeds; counts are totals over every run. Measured on a fixed probe batch (the first validation "
             "instances) every 25 steps and at the end; singular values of each instance's stack "
             "[z¹ … zᵏ] (modalities in sorted order). No best is marked: most of these have no better direction.", ""]
    for title, spec in (("Singular-value view (end of training)", SINGULAR_ROWS),
                        ("Representation (end of training)", representation_rows(runs)),
                        ("Optimisation", OPTIMISATION_ROWS),
                        ("Across seeds", SEEDS_ROWS)):
        table = stability_table(dict(rows), spec)
        if table:
            lines += [f"{level}# {title}", "", table, ""]
    kinds = [k for k in plots_with_data(runs) if k in ("curves", "spectrum")]
    if kinds:
        names = plot_names(stem)
        lines += [f"{level}# Plots", "", "PNG files beside this page (built when matplotlib is installed: "
                  "`pip install 'pmrl-bench[plots]'`).", ""]
        captions = {"curves": "σ1 share and gradient norm per check",
                    "spectrum": "singular values and embedding spectrum at the end"}
        lines += [image(captions[k], names[k]) for k in kinds]
        lines.append("")
    return lines


@dataclass
class Ranked:
    """One protocol's table on one task: its rows (configurations, and the step-0 reference row under a warm start),
    and their ranks by the seed-level comparisons."""

    group: ProtocolGroup
    rows: dict[str, list[Run]]  # configurations only
    ranked: dict[str, list[Run]]  # configurations and the reference row
    ranks: dict[str, int]
    tests: list[SeedComparison]
    # configurations recorded as not applicable to the task (never ranked): {label: runs}
    not_applicable: dict[str, list[Run]] = field(default_factory=dict)


def rank_group(group: ProtocolGroup) -> Ranked:
    from pmrl_bench.leaderboard.protocols import init_reference
    from pmrl_bench.leaderboard.tables import by_label

    rows = by_label(group.runs)
    ranked = dict(rows)
    reference = init_reference(group)
    if reference:
        ranked[reference[0].label] = list(reference)
    ranks, tests = main_ranks(rows)  # the step-0 row is shown for reference, never ranked
    return Ranked(group, rows, ranked, ranks, tests)


def protocol_tables(runs: Sequence[Run]) -> list[Ranked]:
    """One :class:`Ranked` per protocol (``scratch`` first); runs recorded as not applicable are set apart."""
    from pmrl_bench.leaderboard.not_applicable import split_runs
    from pmrl_bench.leaderboard.protocols import ProtocolGroup, by_protocol

    tables = []
    for group in by_protocol(runs):
        applicable, skipped = split_runs(group.runs)
        table = rank_group(ProtocolGroup(group.name, applicable) if skipped else group)
        table.not_applicable = skipped
        tables.append(table)
    return tables


def group_sections(table: Ranked, stem: str, tuning_lines: Sequence[str] = (),
                   baselines: Sequence[BaselineResult] = ()) -> list[str]:
    """Everything a task page says about one protocol; ``baselines`` (linear CCA) join its cosine retrieval table."""
    from pmrl_bench.leaderboard.protocols import ProtocolGroup, describe

    group, rows, ranked, ranks, tests = table.group, table.rows, table.ranked, table.ranks, table.tests
    if not group.runs:  # every configuration of this protocol was not applicable to the task
        skipped = [r for rs in table.not_applicable.values() for r in rs]
        return [describe(ProtocolGroup(group.name, skipped)), "", *retrieval_sections({}, {}, "###",
                                                                                     table.not_applicable)]
    lines = [describe(group), ""]
    references = [label for label in ranked if label not in rows]
    lines += retrieval_sections(ranked, ranks, not_applicable=table.not_applicable, references=references,
                                baselines=baselines)
    lines += pairwise_section(rows, ranks, tests)
    if group.warm:
        lines += step0_section(rows)
    lines += classification_section(ranked, references=references)
    lines += robustness_section(rows, stem)
    lines += cost_section(rows)
    lines += list(tuning_lines)
    lines += terms_section(rows)
    lines += stability_section(stem, rows)
    return lines
