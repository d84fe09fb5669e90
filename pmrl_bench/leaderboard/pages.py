"""The pages: one per task (a section per protocol) and the overview (grouped by protocol).

Page names never collide with the overview or with each other (:func:`page_stems`); every string from a result
file reaches a page through :mod:`pmrl_bench.leaderboard.md`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pmrl_bench.baselines.record import BaselineResult
from pmrl_bench.composite import display_name
from pmrl_bench.leaderboard.data import Run, hardware
from pmrl_bench.leaderboard.md import Markdown, code, link, text
from pmrl_bench.leaderboard.protocols import slug
from pmrl_bench.leaderboard.sections import RETRIEVAL_CI, SEED_CI, Ranked, group_sections
from pmrl_bench.leaderboard.stats import N_BOOTSTRAP
from pmrl_bench.leaderboard.tables import markdown, seeds_cell
from pmrl_bench.results import RunResult

OVERVIEW = "README.md"
# Names a task page must not take: the overview's, the verdicts', and names Windows reserves for devices (any
# extension).
RESERVED_STEMS = frozenset({"readme", "verdicts", "modality-scaling", "con", "prn", "aux", "nul",
                            *(f"{p}{i}" for p in ("com", "lpt") for i in range(1, 10))})
# Below this many test instances a page warns that its retrieval numbers say little.
SMALL_TEST_SPLIT = 100

CI_NOTE = (
    "Cells: mean ± std over the seeds that finished (`ok`), then a 95% bootstrap interval [low, high] "
    f"({N_BOOTSTRAP} replicates, fixed generator). Configurations of different protocols never share a table."
)


@dataclass(frozen=True)
class Skipped:
    """A result file the leaderboard left out: its path (relative to the results directory) and why."""

    path: str
    reason: str


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


def group_stem(stem: str, protocol: str) -> str:
    """The file-name stem of one protocol's plots on a task page."""
    return f"{stem}.{slug(protocol)}"


def task_page(task: str, stem: str, runs: Sequence[Run], tables: Sequence[Ranked],
              tuning: Mapping[str, list[str]], baselines: Sequence[BaselineResult] = ()) -> str:
    """A task's page; ``baselines`` (computed on the same data) join the cosine retrieval table of every protocol."""
    results = [r.result for r in runs]
    lines = [f"# Leaderboard: {code(task)}", "", *card_lines(results), *dataset_lines(task, results), "",
             *provenance(results), "",
             CI_NOTE, "", "Retrieval rank rule for each query: pessimistic (equal scores count against the query).",
             ""]
    if len(tables) > 1:
        lines += ["Protocols on this page: " + ", ".join(
            link(t.group.name, f"#protocol-{_anchor(t.group.name)}") for t in tables) + ".", ""]
    for table in tables:
        lines += [f"## Protocol {code(table.group.name)}", ""]
        lines += group_sections(table, group_stem(stem, table.group.name), tuning.get(table.group.name, []),
                                baselines)
    return "\n".join(lines).rstrip("\n") + "\n"


def _anchor(name: str) -> str:
    """GitHub's heading anchor of ``Protocol `name``` (lower case, punctuation dropped, spaces to hyphens)."""
    return "".join(c for c in name.lower() if c.isalnum() or c in "-_ ").replace(" ", "-")


def card_lines(results: Sequence[RunResult]) -> list[str]:
    """The data card(s) the runs recorded (``data_card``), each distinct one once: what the data is, where it comes
    from, on what terms, how to cite it; nothing for results that recorded none."""
    cards = list(dict.fromkeys(json.dumps(r.data_card, sort_keys=True) for r in results if r.data_card))
    lines: list[str] = []
    for raw in cards:
        card = json.loads(raw)

        def said(key: str) -> str:
            return text(" ".join(str(card.get(key) or "not stated").split()))

        modalities = ", ".join(f"{m.get('name')} ({m.get('kind')}, {m.get('width')})"
                               for m in card.get("modalities", []))
        files = ", ".join(f"{name} (sha256 {str(digest)[:12]}…)"
                          for name, digest in sorted(card.get("files", {}).items()))
        lines += [f"**Data card: {said('name')}.** {said('description')}", "",
                  f"- Source: {said('source')}" + (f" ({said('homepage')})" if card.get("homepage") else ""),
                  f"- Licence: {said('licence')}", f"- Citation: {said('citation')}",
                  f"- Modalities: {text(modalities) or 'not stated'}; classes: {card.get('num_classes') or 'none'}"]
        lines += [f"- Files: {text(files)}"] if files else []
        lines.append("")
    return lines


def dataset_lines(task: str, results: Sequence[RunResult]) -> list[str]:
    """What data the page is about: the task's parameters, the data fingerprint(s) and the split sizes."""
    params = sorted({json.dumps(r.params.get("task", {}), sort_keys=True, default=repr) for r in results})
    fingerprints: dict[str, int] = {}
    for r in results:
        fingerprints[r.data_fingerprint or "not recorded"] = (
            fingerprints.get(r.data_fingerprint or "not recorded", 0) + 1)
    splits = sorted({json.dumps(r.splits.model_dump(), sort_keys=True) for r in results if r.splits is not None})
    lines = [f"- Dataset: task {code(task)} with "
             + "; or ".join(text(_inline(json.loads(p)) or "its defaults") for p in params)]
    lines.append("- Data fingerprint: " + ", ".join(
        f"{code(f)} ({n} results)" for f, n in sorted(fingerprints.items())))
    for s in splits:
        sizes = json.loads(s)
        dropped = f" ({sizes['dropped']} rows dropped before splitting)" if sizes.get("dropped") else ""
        lines.append(f"- Splits: train {sizes['train']}, validation {sizes['val']}, test {sizes['test']}{dropped}")
        if 0 < sizes["test"] < SMALL_TEST_SPLIT:
            lines.append(f"- ⚠ Only {sizes['test']} test instances: chance R@1 is {100 / sizes['test']:.1f}% "
                         f"and chance R@10 {min(100.0, 1000 / sizes['test']):.0f}%; "
                         "these retrieval numbers say little.")
    return lines


def provenance(results: Sequence[RunResult]) -> list[str]:
    commands = sorted({r.command for r in results if r.command})
    budgets = sorted({json.dumps(r.params.get("budget", {}), sort_keys=True) for r in results})
    versions = sorted({json.dumps({k: v for k, v in r.versions.items() if k != "plugins"}, sort_keys=True)
                       for r in results})
    plugins = sorted({f"{k} {v}" for r in results for k, v in r.versions.get("plugins", {}).items()})
    seeds = sorted({r.seed for r in results})
    lines = [
        "Generated from result files by `pmrl-bench leaderboard`; do not edit by hand.",
        "",
        f"- Runs: {len(results)} result files; seeds {', '.join(map(str, seeds))}; {text(hardware(results))}",
    ]
    lines += [f"- Command: {code(c)}" for c in commands]
    lines += [f"- Budget: {text(_inline(json.loads(b)))}" for b in budgets]
    lines += [f"- Versions: {text(_inline(json.loads(v)))}" for v in versions]
    if plugins:
        lines.append(f"- Plugins: {text(', '.join(plugins))}")
    return lines


def _inline(mapping: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(mapping.items()))


def overview(tasks: Mapping[str, list[Run]], tables: Mapping[str, list[Ranked]], stems: Mapping[str, str],
             problems: Iterable[Skipped | str]) -> str:
    all_results = [r.result for runs in tasks.values() for r in runs]
    lines = ["# pmrl-bench leaderboards", "", *provenance(all_results), "",
             f"Planned comparisons, each objective against the reference objectives with one Holm correction over "
             f"them all: {link('verdicts', 'verdicts.md')} (also {code('verdicts.json')}). The ranks below are "
             "exploratory.", ""]
    protocols = sorted({t.group.name for ts in tables.values() for t in ts}, key=lambda n: (n != "scratch", n))
    for protocol in protocols:
        per_task = {task: t for task, ts in tables.items() for t in ts if t.group.name == protocol}
        lines += [f"## Protocol {code(protocol)}", ""]
        rows = []
        for task, table in per_task.items():
            objectives = sorted({display_name(r.result.objective) for r in table.group.runs})
            named = [code(o) for o in objectives] + [
                f"{code(o)} (not applicable)" for o in sorted({display_name(r.result.objective)
                                                              for rs in table.not_applicable.values() for r in rs})]
            counted = table.group.runs or [r for rs in table.not_applicable.values() for r in rs]
            rows.append([link(task, f"{stems[task]}.md#protocol-{_anchor(protocol)}"), seeds_cell(counted),
                         Markdown(", ".join(named))])
        lines += [markdown(rows, ["task", "runs ok", "objectives"]), ""]
        lines += _rank_table(per_task, stems)
        lines += _friedman(per_task)
    lines += ["## How to read the pages", "", CI_NOTE, "", "Retrieval " + RETRIEVAL_CI[0].lower() + RETRIEVAL_CI[1:],
              "Where a view stores no per-query ranks, its intervals are a bootstrap over seeds "
              "(each page says which).",
              SEED_CI.replace("here ", "for classification "), "",
              "Ranks come from paired t-tests over seeds (the training run is the unit; Holm-corrected per table, "
              "at least 70% of the seeds agreeing in sign), not from overlapping intervals; they are exploratory. "
              "The verdicts page holds the planned comparisons.", "",
              "Rebuild these pages from the result files alone: `pmrl-bench leaderboard RESULTS_DIR --out DIR`; "
              "`--check` exits 1 when the files on disk differ from what the results give.", ""]
    problems = list(problems)
    if problems:
        lines += ["## Skipped result files", "", *(f"- {_skipped(p)}" for p in problems), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _rank_table(per_task: Mapping[str, Ranked], stems: Mapping[str, str]) -> list[str]:
    """Rank per task (paired tests on mean R@1) and the mean rank over the tasks a configuration ran on."""
    labels = sorted({label for t in per_task.values() for label in t.ranks})
    if not labels:
        return []
    body = []
    for label in labels:
        ranks = [t.ranks.get(label) for t in per_task.values()]
        seen = [r for r in ranks if r is not None]
        body.append([f"{sum(seen) / len(seen):.2f}", code(label), *(str(r) if r is not None else "–" for r in ranks)])
    body.sort(key=lambda row: (float(row[0]), row[1]))
    headers = ["mean rank", "configuration", *(link(t, f"{stems[t]}.md") for t in per_task)]
    return ["### Rank across tasks", "",
            "Per task: 1 + the number of configurations significantly better on mean cosine R@1 by a paired "
            "t-test over seeds (Holm-corrected over the pairs of the task's table, at least 70% of the seeds "
            "agreeing in sign; fewer than 3 seeds in common: not tested); equal ranks mean no detectable "
            "difference was found, not equality. Exploratory: the planned comparisons are on the verdicts page. "
            "Mean rank over the tasks a configuration ran on.",
            "", markdown(body, headers), ""]


def _friedman(per_task: Mapping[str, Ranked]) -> list[str]:
    from pmrl_bench.leaderboard.significance import critical_difference_table, friedman_nemenyi

    # configurations only: the step-0 rows are references, never ranked
    comparison = friedman_nemenyi({task: [r for rs in t.rows.values() for r in rs] for task, t in per_task.items()})
    if comparison is None:
        return []
    return ["### Across tasks: Friedman test and Nemenyi post-hoc", "", critical_difference_table(comparison), ""]


def _skipped(problem: Skipped | str) -> str:
    if isinstance(problem, Skipped):
        return f"{code(problem.path)}: {text(problem.reason)}"
    return text(problem)
