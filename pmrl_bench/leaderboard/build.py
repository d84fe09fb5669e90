"""Turn result files into the leaderboards: one markdown page per task, an overview, and PNG plots.

Everything is sorted and formatted deterministically and the bootstrap uses a fixed generator: the same
results give byte-identical markdown. Every string taken from a result file goes into a page through
:mod:`pmrl_bench.leaderboard.md` (escaped), and page names never collide with the overview or each other.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pmrl_bench.errors import PmrlBenchError, UsageError
from pmrl_bench.leaderboard.data import MAIN_VIEW, Run, runs_of
from pmrl_bench.leaderboard.md import Markdown, code, image, link, text
from pmrl_bench.leaderboard.plots import plot_names, plots_with_data, render_plots
from pmrl_bench.leaderboard.stats import MAX_BOOTSTRAP_QUERIES, N_BOOTSTRAP
from pmrl_bench.leaderboard.tables import (
    SEED_ONLY_MARK, Column, StabilityRow, by_label, direction_columns, main_rank_column, markdown, ranked_table,
    retrieval_columns, scalar_cell, seeds_cell, stability_table,
)
from pmrl_bench.results import RunResult
from pmrl_bench.results.locks import output_lock_problem

Page = str | bytes
OVERVIEW = "README.md"
# Names a task page must not take: the overview's, and names Windows reserves for devices (any extension).
RESERVED_STEMS = frozenset({"readme", "con", "prn", "aux", "nul", *(f"{p}{i}" for p in ("com", "lpt") for i in range(1, 10))})


@dataclass(frozen=True)
class Skipped:
    """A result file the leaderboard left out: its path (relative to the results directory) and why."""

    path: str
    reason: str

CI_NOTE = (
    "Cells: mean ± std over the seeds that finished (`ok`), then a 95% bootstrap interval [low, high] "
    f"({N_BOOTSTRAP} replicates, fixed generator). **Bold**: rank 1 in that column, i.e. no other row's interval "
    "lies entirely above (below, for ↓) this one's: several bold cells in a column are a tie."
)
RETRIEVAL_CI = (
    "Intervals: a two-stage bootstrap: seeds resampled, and test queries resampled within each "
    "seed, so they cover both training noise and test-set sampling."
)
SEED_CI = "Intervals here are a bootstrap over seeds (the seed is the unit; per-instance predictions are not stored)."
MIXED_CI = (f"Cells marked {SEED_ONLY_MARK} lack per-query ranks (or rank more than {MAX_BOOTSTRAP_QUERIES} queries), "
            "so their interval is a bootstrap over seeds only.")

MEAN_R1_KEY = "test/mean_R@1"

SINGULAR_ROWS = [
    StabilityRow("singular/sigma1_share", "σ1 share σ1²/Σσ²", "1 = each instance's modalities aligned (up to sign); 1/k = orthogonal", ".3f"),
    StabilityRow("singular/gap_min", "gap σ1−σ2, min", "small = leading vector ill-defined; its gradient scales like 1/gap"),
    StabilityRow("singular/gap_p1", "gap σ1−σ2, 1st percentile", "as above, robust to one outlier"),
    StabilityRow("singular/gap_small_fraction", "share of gaps < 1e-3", "instances whose leading vector is near-degenerate", ".3f"),
    StabilityRow("singular/gap_min_over_training", "gap min over all checks", "the worst gap seen during training"),
    StabilityRow("singular/log10_condition_median", "log10 κ(G), median", "κ = σ1²/σk²; large = stack nearly rank-deficient", ".2f"),
    StabilityRow("singular/log10_condition_max", "log10 κ(G), max", "worst instance", ".2f"),
    StabilityRow("singular/sign_flip_rate_mean", "u sign flips between checks", "share of instances whose leading singular vector (sign as the eigensolver returns it) flipped sign", ".3f"),
    StabilityRow("singular/u_against_mean_fraction", "u against modality mean", "share of leading vectors pointing away from their own modalities' sum", ".3f"),
    StabilityRow("singular/volume_mean", "volume ∏σ of own tuple", "0 = each instance's modalities span fewer than k dimensions", ".3f"),
    StabilityRow("singular/negative_det_fraction", "det G < 0 in fp32", "rounding makes det negative: volume-based scores are unreliable there", ".3f"),
]
OPTIMISATION_ROWS = [
    StabilityRow("optimisation/grad_norm_mean", "grad norm (before clipping), mean", "scale of the updates"),
    StabilityRow("optimisation/grad_norm_cv", "grad norm CV", "std/mean over steps: how bursty the gradients are", ".3f"),
    StabilityRow("optimisation/grad_norm_max_over_median", "grad norm max/median", "the largest burst relative to a typical step"),
    StabilityRow("optimisation/clipped_fraction", "clipped steps", "share of steps whose gradient norm exceeded the clip", ".3f"),
    StabilityRow("optimisation/loss_spikes", "loss spikes", "steps above the rolling median by > 5 MADs (total over runs)", total=True),
    StabilityRow("optimisation/non_finite", "non-finite loss or gradient", "count over every run, diverged ones included", total=True),
    StabilityRow("optimisation/loss_final", "final training loss", "not comparable across objectives"),
]
SEEDS_ROWS = [
    StabilityRow(MEAN_R1_KEY, "test mean R@1 across seeds", "mean ± std and CV over seeds of the cosine retrieval headline", ".3f"),
    StabilityRow("probe_retrieval/r1_peak_to_final_drop", "R@1 peak-to-final drop (probe)", "best R@1 during training minus the final one, on the probe batch", ".3f"),
    StabilityRow("probe_retrieval/r1_peak_step", "step of the R@1 peak (probe)", "late = still improving at the end", ".0f"),
]


def _representation_rows(runs: Sequence[Run]) -> list[StabilityRow]:
    keys = sorted({k for r in runs for k in r.stability})
    pairs = [k for k in keys if k.startswith("representation/positive_cosine/")]
    modalities = [k for k in keys if k.startswith("representation/effective_rank/") and not k.endswith("/all")]
    rows = [
        StabilityRow(k, f"signed positive cosine {k.rsplit('/', 1)[1].replace('|', '–')}",
                     "mean cos of an instance's two modalities; ⚠ negative = aligned with the other's negative",
                     ".3f", warn_negative=True)
        for k in pairs
    ]
    rows += [
        StabilityRow("representation/positive_cosine_min", "signed positive cosine, worst pair", "the pair to look at first", ".3f", warn_negative=True),
        StabilityRow("representation/modality_gap_mean", "modality gap, mean over pairs", "distance between modality means (0 = none)", ".3f"),
        StabilityRow("representation/effective_rank/all", "effective rank, all modalities", "exp(entropy of singular values) of the pooled embeddings; low = collapse"),
    ]
    rows += [StabilityRow(k, f"effective rank, {k.rsplit('/', 1)[1]}", "per modality") for k in modalities]
    rows.append(StabilityRow("representation/uniformity/all", "uniformity, pooled", "log E exp(−2‖x−y‖²): lower = more spread out", ".3f"))
    return rows


def _with_headline(runs: Sequence[Run]) -> None:
    """Adds the test mean R@1 (cosine) to each run's scalars, so the stability table shows its spread over seeds."""
    for r in runs:
        view = r.views.get(MAIN_VIEW, {})
        if view:
            r.stability[MEAN_R1_KEY] = float(np.mean([s["R@1"] for s in view.values()]))


def _view_title(view: str) -> str:
    if view == MAIN_VIEW:
        return "cosine"
    return view.removeprefix("retrieval_").replace("_", " ")


def _retrieval_sections(rows: dict[str, list[Run]], runs: Sequence[Run]) -> list[str]:
    views = sorted({v for r in runs for v in r.views}, key=lambda v: (v != MAIN_VIEW, v))
    lines: list[str] = []
    rank_column = main_rank_column(runs)
    for view in views:
        directions = sorted({d for r in runs for d in r.views.get(view, {})})
        title = _view_title(view)
        lines += [f"## Retrieval ({text(title)}), R@K in %", ""]
        if view != MAIN_VIEW:
            lines += [f"Another retrieval view found in the results ({code(f'metrics[{json.dumps(view)}]')}): the same "
                      "runs and test instances, scored as that view defines.", ""]
        # Views other than cosine may give each objective its own directions (e.g. a native score anchored on
        # one modality): their means are over each row's own directions.
        own = view != MAIN_VIEW and len({frozenset(r.views.get(view, {})) for r in runs if r.views.get(view)}) > 1
        summary = retrieval_columns(rows, view, None if own else directions)
        lines += [_interval_note(summary), ""]
        table, _ = ranked_table(rows, summary, rank_by=rank_column if view == MAIN_VIEW else None)
        lines += ["### Mean over each row's own directions (they differ by objective)" if own
                  else f"### Mean over the {len(directions)} directions", ""]
        if view == MAIN_VIEW:
            lines += ["`rank`: 1 + the number of rows whose mean-R@1 interval lies entirely above this row's "
                      "(equal ranks are ties).", ""]
        lines += [table, ""]
        per_direction, _ = ranked_table(rows, direction_columns(rows, view, directions, "R@1", own_mean=own))
        lines += ["### R@1 per direction (query → gallery)", "", per_direction, ""]
    return lines


def _interval_note(columns: Sequence[Column]) -> str:
    """Which bootstrap this view's intervals come from (all cells of a view share their source of ranks)."""
    kinds = {c.seed_only for col in columns for c in col.cells.values() if c.interval is not None}
    if kinds == {False}:
        return RETRIEVAL_CI
    if kinds == {True}:
        return ("Intervals: a bootstrap over seeds (these results store no per-query ranks for this view, or rank "
                f"more than {MAX_BOOTSTRAP_QUERIES} queries).")
    return MIXED_CI


def _classification_section(rows: dict[str, list[Run]], runs: Sequence[Run]) -> list[str]:
    probes = sorted({p for r in runs for p in r.classification})
    if not probes:
        return []
    columns = [
        Column(p, {label: scalar_cell(rs, lambda r, p=p: r.classification.get(p)) for label, rs in rows.items()}, True, True)
        for p in probes
    ]
    table, _ = ranked_table(rows, columns)
    return ["## Classification (accuracy %, probes on frozen embeddings)", "", SEED_CI, "", table, ""]


def _stability_section(stem: str, rows: dict[str, list[Run]], runs: Sequence[Run]) -> list[str]:
    lines = ["## Stability", "",
             "Mean ± std over the seeds that finished, with the coefficient of variation (CV = std/|mean|) "
             "across seeds; counts are totals over every run. Measured on a fixed probe batch (the first test "
             "instances) every 25 steps and at the end; singular values of each instance's stack "
             "[z¹ … zᵏ] (modalities in sorted order). No best is marked: most of these have no better direction.", ""]
    for title, spec in (("Singular-value view (end of training)", SINGULAR_ROWS),
                        ("Representation (end of training)", _representation_rows(runs)),
                        ("Optimisation", OPTIMISATION_ROWS),
                        ("Across seeds", SEEDS_ROWS)):
        table = stability_table(rows, spec)
        if table:
            lines += [f"### {title}", "", table, ""]
    kinds = plots_with_data(runs)
    if kinds:
        names = plot_names(stem)
        lines += ["### Plots", "", "PNG files beside this page (built when matplotlib is installed: "
                  "`pip install 'pmrl-bench[plots]'`).", ""]
        captions = {"curves": "σ1 share and gradient norm per check", "spectrum": "singular values and embedding spectrum at the end"}
        lines += [image(captions[k], names[k]) for k in kinds]
        lines.append("")
    return lines


def _task_page(task: str, stem: str, runs: Sequence[Run]) -> str:
    rows = by_label(runs)
    lines = [f"# Leaderboard: {code(task)}", "", *_provenance([r.result for r in runs]), "", CI_NOTE, "",
             "Retrieval rank rule for each query: pessimistic (ties in score count against the query).", ""]
    lines += _retrieval_sections(rows, runs)
    lines += _classification_section(rows, runs)
    lines += _stability_section(stem, rows, runs)
    return "\n".join(lines).rstrip("\n") + "\n"


def _provenance(results: Sequence[RunResult]) -> list[str]:
    commands = sorted({r.command for r in results if r.command})
    budgets = sorted({json.dumps(r.params.get("budget", {}), sort_keys=True) for r in results})
    versions = sorted({json.dumps({k: v for k, v in r.versions.items() if k != "plugins"}, sort_keys=True) for r in results})
    plugins = sorted({f"{k} {v}" for r in results for k, v in r.versions.get("plugins", {}).items()})
    seeds = sorted({r.seed for r in results})
    devices = sorted({r.device for r in results})
    lines = [
        "Generated from result files by `pmrl-bench leaderboard`; do not edit by hand.",
        "",
        f"- Runs: {len(results)} result files; seeds {', '.join(map(str, seeds))}; devices {text(', '.join(devices))}",
    ]
    lines += [f"- Command: {code(c)}" for c in commands]
    lines += [f"- Budget: {text(_inline(json.loads(b)))}" for b in budgets]
    lines += [f"- Versions: {text(_inline(json.loads(v)))}" for v in versions]
    if plugins:
        lines.append(f"- Plugins: {text(', '.join(plugins))}")
    return lines


def _inline(mapping: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(mapping.items()))


def _rank_table(tasks: dict[str, list[Run]], stems: dict[str, str]) -> list[str]:
    """Rank per task (mean R@1, cosine, tie-aware) and the mean rank over the tasks a configuration ran on."""
    per_task = {}
    for task, runs in tasks.items():
        column = main_rank_column(runs)
        if column is not None:
            per_task[task] = column.ranks()
    labels = sorted({label for ranks in per_task.values() for label in ranks})
    if not labels:
        return []
    body = []
    for label in labels:
        ranks = [per_task[t].get(label) for t in per_task]
        seen = [r for r in ranks if r is not None]
        mean = sum(seen) / len(seen)
        body.append([f"{mean:.2f}", code(label), *(str(r) if r is not None else "–" for r in ranks)])
    body.sort(key=lambda row: (float(row[0]), row[1]))
    headers = ["mean rank", "objective", *(link(t, f"{stems[t]}.md") for t in per_task)]
    return ["## Rank across tasks", "",
            "Per task: rank on mean R@1 over the cosine directions, 1 + the number of configurations whose 95% "
            "interval lies entirely above (equal ranks are ties). Mean rank over the tasks a configuration ran on.",
            "", markdown(body, headers), ""]


def _overview(tasks: dict[str, list[Run]], stems: dict[str, str], problems: Iterable[Skipped | str]) -> str:
    all_results = [r.result for runs in tasks.values() for r in runs]
    lines = ["# pmrl-bench leaderboards", "", *_provenance(all_results), ""]
    rows = []
    for task, runs in tasks.items():
        objectives = sorted({r.result.objective for r in runs})
        rows.append([link(task, f"{stems[task]}.md"), seeds_cell(runs), Markdown(", ".join(code(o) for o in objectives))])
    if rows:
        lines += ["## Tasks", "", markdown(rows, ["task", "runs ok", "objectives"]), ""]
    lines += _rank_table(tasks, stems)
    lines += ["## How to read the pages", "", CI_NOTE, "", "Retrieval " + RETRIEVAL_CI[0].lower() + RETRIEVAL_CI[1:],
              "Where a view stores no per-query ranks, its intervals are a bootstrap over seeds (each page says which).",
              SEED_CI.replace("here ", "for classification "), "",
              "Rebuild these pages from the result files alone: `pmrl-bench leaderboard RESULTS_DIR --out DIR`; "
              "`--check` exits 1 when the files on disk differ from what the results give.", ""]
    problems = list(problems)
    if problems:
        lines += ["## Skipped result files", "", *(f"- {_skipped(p)}" for p in problems), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _skipped(problem: Skipped | str) -> str:
    if isinstance(problem, Skipped):
        return f"{code(problem.path)}: {text(problem.reason)}"
    return text(problem)


def page_stems(tasks: Iterable[str]) -> dict[str, str]:
    """File name (without ``.md``) of each task's page and plots: the task's name, unless it would collide with
    the overview or an earlier task (compared case-insensitively, as macOS and Windows file systems do); then
    ``_<name>``, numbered if needed (task names never start with ``_``, so these never meet a task's own name)."""
    taken = set(RESERVED_STEMS)
    stems = {}
    for task in sorted(tasks):
        stem, n = task, 1
        while stem.casefold() in taken:
            stem = f"_{task}" if n == 1 else f"_{task}-{n}"
            n += 1
        taken.add(stem.casefold())
        stems[task] = stem
    return stems


def build_leaderboards(results: Sequence[RunResult], problems: Iterable[Skipped | str] = (),
                       plots: bool = True) -> dict[str, Page]:
    """``{file name: content}``: a markdown page per task, ``README.md`` (the overview) and, with ``plots``
    and matplotlib installed, PNG plots (bytes) beside them. ``problems``: the result files left out."""
    tasks = runs_of(results)
    for runs in tasks.values():
        _with_headline(runs)
    stems = page_stems(tasks)
    pages: dict[str, Page] = {f"{stems[task]}.md": _task_page(task, stems[task], runs) for task, runs in tasks.items()}
    pages[OVERVIEW] = _overview(tasks, stems, problems)
    if plots:
        for task, runs in tasks.items():
            pages.update(render_plots(task, runs, stems[task]))
    return pages


class LeaderboardWriteError(PmrlBenchError):
    """A page could not be written (disk full, directory removed): exit status 1; the results are untouched."""


def ensure_writable(out_dir: Path, option: str = "--leaderboard") -> None:
    """Check, before anything trains and without creating anything, that pages can be written into ``out_dir``:
    it is a directory we may write (or can be created in one), its name fits the file system, its lock is ours."""
    problem = _unwritable(Path(os.path.abspath(out_dir)))
    if problem:
        raise UsageError(f"leaderboard directory {str(out_dir)!r} is not writable: {problem}; "
                         f"pass {option} DIR with a directory you can write")


def _unwritable(path: Path) -> str | None:
    missing, existing = [], path
    while not os.path.lexists(existing):  # the nearest part of the path that exists
        missing.append(existing.name)
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return os.strerror(errno.EACCES)
    try:
        name_max, path_max = os.pathconf(existing, "PC_NAME_MAX"), os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    if any(len(os.fsencode(name)) > name_max for name in missing) or len(os.fsencode(str(path))) >= path_max:
        return os.strerror(errno.ENAMETOOLONG)
    return None if missing else output_lock_problem(path)


def write_leaderboards(out_dir: Path, pages: dict[str, Page]) -> list[Path]:
    """Write every page atomically: a uniquely named temporary beside it, fsync, rename over the page.

    A reader never sees half a page, two writers never share a temporary, and a failure (or a signal) leaves
    no temporary behind: every page is either the old one or the new one.
    """
    written = []
    for name, content in sorted(pages.items()):
        path = out_dir / name
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=".tmp")
        except OSError as exc:
            raise _write_error(out_dir, name, exc) from None
        try:
            os.fchmod(fd, 0o644)  # mkstemp makes 0600; pages are meant to be read by others
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise _write_error(out_dir, name, exc) from None
            raise
        written.append(path)
    return written


def _write_error(out_dir: Path, name: str, exc: OSError) -> LeaderboardWriteError:
    reason = exc.strerror or errno.errorcode.get(exc.errno or 0) or str(exc)
    return LeaderboardWriteError(f"cannot write leaderboard page {name} in {out_dir}/: {reason}; the result files "
                                 "are intact, and each page is either the previous one or the new one")


def check_leaderboards(out_dir: Path, pages: dict[str, Page]) -> list[str]:
    """Names of pages that are missing or differ from what the results give.

    Markdown is compared byte for byte. A PNG only has to exist: its bytes depend on the matplotlib and
    FreeType versions installed, not only on the results (whose every number the markdown already pins).
    """
    stale = []
    for name, content in sorted(pages.items()):
        path = out_dir / name
        if not path.exists():
            stale.append(name)
        elif isinstance(content, str) and path.read_text(encoding="utf-8") != content:
            stale.append(name)
    return stale
