"""What moved between two results directories: a markdown summary short enough for a pull-request comment.

Configurations are matched per task by config id (the same configuration, rerun or recomputed), then by row label
(a configuration whose parameters changed but which each side's leaderboard names the same). For each matched
pair whose results differ, Δ = new − old mean R@1 (cosine view) seed by seed, tested over the seeds both sides
finished (:mod:`pmrl_bench.leaderboard.seed_test`, Holm-corrected over the pairs of a task: the training run is the
unit), and beside it the query-level paired test of :mod:`pmrl_bench.leaderboard.significance` when both sides were
scored on the same test queries (it takes the trained models as given), an unpaired interval with a note otherwise.
Configurations found on one side only are listed as new or vanished; identical ones are only counted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pmrl_bench.errors import UsageError
from pmrl_bench.fsutil import is_directory
from pmrl_bench.leaderboard.data import MAIN_VIEW, Run, runs_of
from pmrl_bench.leaderboard.seed_test import SeedComparison, compare_seeds
from pmrl_bench.leaderboard.seed_test import holm as seed_holm
from pmrl_bench.leaderboard.seed_test import verdict as seed_verdict
from pmrl_bench.leaderboard.significance import (
    ALPHA, PairedTest, format_delta, format_p, holm, paired_test, seed_scores,
)
from pmrl_bench.leaderboard.md import Markdown, code, text
from pmrl_bench.leaderboard.tables import markdown
from pmrl_bench.leaderboard.verdicts import comparison_cells
from pmrl_bench.results import ResultStore, RunResult

Key = tuple[str, str]  # (objective, config id)


@dataclass
class Moved:
    task: str
    label: str
    old: list[Run]
    new: list[Run]
    test: PairedTest  # query-level, given the trained models
    changes: str = ""  # the parameters that differ, when matched by label across config ids
    seeds: SeedComparison | None = None  # new − old over the seeds both sides finished


@dataclass
class Comparison:
    moved: list[Moved] = field(default_factory=list)
    new: list[tuple[str, str, list[Run]]] = field(default_factory=list)  # (task, label, runs)
    vanished: list[tuple[str, str, list[Run]]] = field(default_factory=list)
    unchanged: int = 0


def _configs(runs: Sequence[Run]) -> dict[Key, list[Run]]:
    out: dict[Key, list[Run]] = {}
    for run in runs:
        out.setdefault((run.result.objective, run.result.config_id), []).append(run)
    return out


def _signature(runs: Sequence[Run]) -> list[str]:
    """What a configuration's results say, seed by seed: equal signatures = nothing moved."""
    return sorted(
        json.dumps([r.seed, r.status, r.result.data_fingerprint, r.result.metrics.retrieval,
                    {d: list(map(int, v)) for d, v in r.ranks.get(MAIN_VIEW, {}).items()}], sort_keys=True)
        for r in runs
    )


def _param_changes(old: RunResult, new: RunResult) -> str:
    flat_old = pd.json_normalize(old.params, sep=".").iloc[0].to_dict() if old.params else {}
    flat_new = pd.json_normalize(new.params, sep=".").iloc[0].to_dict() if new.params else {}
    changed = [
        f"{key} {flat_old.get(key, '–')} → {flat_new.get(key, '–')}"
        for key in sorted(set(flat_old) | set(flat_new))
        if json.dumps(flat_old.get(key), default=repr) != json.dumps(flat_new.get(key), default=repr)
    ]
    return ", ".join(changed)


def _match(old: dict[Key, list[Run]], new: dict[Key, list[Run]]) -> tuple[list[tuple[Key, Key]], list[Key], list[Key]]:
    """Pairs (old key, new key): first by config id, then by a label unique on both sides."""
    pairs = [(key, key) for key in sorted(set(old) & set(new))]
    rest_old = {k: old[k][0].label for k in sorted(set(old) - set(new))}
    rest_new = {k: new[k][0].label for k in sorted(set(new) - set(old))}
    for ko, label in list(rest_old.items()):
        same_label = [kn for kn, ln in rest_new.items() if ln == label]
        if len(same_label) == 1 and list(rest_old.values()).count(label) == 1:
            pairs.append((ko, same_label[0]))
            del rest_old[ko], rest_new[same_label[0]]
    return pairs, list(rest_old), list(rest_new)


def compare_results(old: Sequence[RunResult], new: Sequence[RunResult], k: int = 1) -> Comparison:
    """Match the configurations of two result sets per task and test every one whose results moved."""
    old_tasks, new_tasks = runs_of(old), runs_of(new)
    comparison = Comparison()
    for task in sorted(set(old_tasks) | set(new_tasks)):
        before, after = _configs(old_tasks.get(task, [])), _configs(new_tasks.get(task, []))
        pairs, vanished, added = _match(before, after)
        tested: list[Moved] = []
        for ko, kn in pairs:
            if ko == kn and _signature(before[ko]) == _signature(after[kn]):
                comparison.unchanged += 1
                continue
            label = after[kn][0].label
            test = paired_test(after[kn], before[ko], "new", "old", MAIN_VIEW, k)
            changes = _param_changes(before[ko][0].result, after[kn][0].result) if ko != kn else ""
            seeds = compare_seeds(seed_scores(after[kn]), seed_scores(before[ko]), "new", "old")
            tested.append(Moved(task, label, before[ko], after[kn], test, changes, seeds))
        for moved, test in zip(tested, holm([m.test for m in tested])):
            moved.test = test
        for moved, seeds in zip(tested, seed_holm([m.seeds for m in tested if m.seeds is not None])):
            moved.seeds = seeds  # every one tested here has them
        comparison.moved += tested
        comparison.vanished += [(task, before[key][0].label, before[key]) for key in vanished]
        comparison.new += [(task, after[key][0].label, after[key]) for key in added]
    return comparison


def _mean_r1(runs: Sequence[Run], k: int) -> str:
    values = [np.mean([s[f"R@{k}"] for s in r.views.get(MAIN_VIEW, {}).values()]) for r in runs
              if r.status == "ok" and r.views.get(MAIN_VIEW)]
    return f"{np.mean(values) * 100:.1f}" if values else "–"


def _seeds(runs: Sequence[Run]) -> str:
    return f"{sum(r.status == 'ok' for r in runs)}/{len(runs)}"


def _seed_cells(moved: Moved, alpha: float) -> list[str]:
    c = moved.seeds
    if c is None:
        return ["–"] * 4
    delta, _, agree, _, _, holm_p = comparison_cells(c)
    return [delta, agree, holm_p, seed_verdict(c, alpha).replace("beats", "better").replace("loses to", "worse")]


def _verdict(test: PairedTest, alpha: float) -> str:
    if test.p_value is None:
        return f"not tested: {test.note}" if test.note else "not tested"
    text = ("better" if test.delta > 0 else "worse") if test.significant(alpha) else "no significant change"
    return f"{text} ({test.note})" if test.note else text


def comparison_markdown(comparison: Comparison, old_name: str, new_name: str, k: int = 1, alpha: float = ALPHA) -> str:
    """The pull-request comment: a one-line summary, the table of what moved, then new and vanished configurations."""
    significant = sum(m.test.significant(alpha) for m in comparison.moved)
    lines = [
        f"### pmrl-bench compare: {code(old_name)} → {code(new_name)}", "",
        (f"**{len(comparison.moved)} moved** ({significant} significantly), {len(comparison.new)} new, "
         f"{len(comparison.vanished)} vanished, {comparison.unchanged} unchanged."), "",
    ]
    if comparison.moved:
        body = [
            [m.task, Markdown(code(m.label) + (f" ({text(m.changes)})" if m.changes else "")),
             f"{_seeds(m.old)} → {_seeds(m.new)}", _mean_r1(m.old, k), _mean_r1(m.new, k), *_seed_cells(m, alpha),
             format_delta(m.test), format_p(m.test.p_corrected), _verdict(m.test, alpha)]
            for m in comparison.moved
        ]
        headers = ["task", "configuration", "seeds ok", f"old R@{k}", f"new R@{k}", "seed-level Δ [95% t-interval]",
                   "seeds agreeing", "p (t over seeds, Holm)", "seed-level verdict",
                   f"Δ R@{k} (points) [95%]", "query-level p (Holm, given these trained models)", "verdict"]
        lines += [markdown(body, headers), "",
                  (f"Mean R@{k} in % over the cosine directions and the seeds that finished. Seed-level: one "
                   "difference new − old per seed both sides finished, a 95% t-interval and a paired t-test over "
                   "the seeds, Holm-corrected per task; `beats` / `loses to` also need 70% of the seeds to agree in "
                   "sign. Then Δ with a paired 95% bootstrap interval (seeds, and test queries within each seed) "
                   "and the query-level p (sign flips over test queries, Holm-corrected per task), which takes the "
                   f"trained models as given; significant at α = {alpha}."),
                  ""]
    for title, entries in (("New", comparison.new), ("Vanished", comparison.vanished)):
        if entries:
            items = ", ".join(f"{text(task)} {code(label)} (R@{k} {_mean_r1(runs, k)}, {_seeds(runs)} seeds)"
                              for task, label, runs in entries)
            lines += [f"**{title}:** {items}", ""]
    return "\n".join(lines).rstrip() + "\n"


def read_results(directory: Path, side: str) -> tuple[list[RunResult], list[str]]:
    """Every valid result under ``directory``, and one line per file that was skipped."""
    if not is_directory(directory):
        raise UsageError(f"{side} results directory {str(directory)!r} does not exist; "
                         "pass a directory of result files")
    results, problems = ResultStore(directory).scan()
    return results, [f"skipped {p.path}: {p.reason}" for p in problems]


def compare_directories(old_dir: Path, new_dir: Path, k: int = 1) -> tuple[str, list[str]]:
    """The markdown comparing two results directories, and the warnings about skipped files."""
    old, old_problems = read_results(old_dir, "old")
    new, new_problems = read_results(new_dir, "new")
    if not old and not new:
        raise UsageError(f"neither {str(old_dir)!r} nor {str(new_dir)!r} holds a result file; pass results directories "
                         "(e.g. results/ of two checkouts)")
    return comparison_markdown(compare_results(old, new, k), str(old_dir), str(new_dir), k), old_problems + new_problems
