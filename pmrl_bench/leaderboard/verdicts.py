"""The planned comparisons: each objective against each reference objective, per task and protocol, with one Holm
correction over them all; their verdicts as a page (``verdicts.md``) and a document (``verdicts.json``).

The family is fixed by the results before any number is looked at: for every task and protocol, each objective's
**default** configuration (no tuning, row label the objective's plain name) against each reference's default, and
each **tuned** configuration against the reference tuned the same way (same protocol tag: protocol, selection rule,
tuning budget); a reference meets each other reference once. Each comparison is
:func:`~pmrl_bench.leaderboard.seed_test.compare_seeds` on the per-seed mean cosine R@1 (the seeds both finished
``ok``); Holm runs once over every comparison of every task and protocol, so a verdict holds with the family as a
whole. Runs marked inert (:mod:`pmrl_bench.run_marks`: they did not train) are named beside the verdict, since then
the numbers are those of the encoders the run started from.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pmrl_bench.composite import display_name
from pmrl_bench.errors import UsageError
from pmrl_bench.leaderboard.data import MAIN_VIEW, Run, config_labels, protocol_tag, retrieval_views
from pmrl_bench.leaderboard.md import code, text
from pmrl_bench.leaderboard.protocols import by_protocol
from pmrl_bench.leaderboard.seed_test import (
    ALPHA, MIN_AGREE, MIN_SEEDS, NO_DIFFERENCE, TOO_FEW, SeedComparison, compare_seeds, holm, verdict,
)
from pmrl_bench.leaderboard.significance import format_p, seed_scores
from pmrl_bench.leaderboard.tables import markdown
from pmrl_bench.results import RunResult
from pmrl_bench.results.schema import NOT_APPLICABLE
from pmrl_bench.rounding import sig
from pmrl_bench.run_marks import run_marks

REFERENCES = ("infonce", "anchor", "gram")
PAGE = "verdicts.md"
DOCUMENT = "verdicts.json"
DECIMALS = 4  # of a fraction in verdicts.json (0.0001 = 0.01 points of R@1)
TEST = ("paired t-test over seeds on the per-seed difference of mean cosine R@1 (the training run is the unit), "
        "Holm-corrected once over the whole family; a verdict also needs at least 70 % of the seeds to agree in "
        "sign with the mean difference; exact sign-flip p over seeds reported beside it")


@dataclass(frozen=True)
class Side:
    objective: str
    label: str


@dataclass(frozen=True)
class Planned:
    """One planned comparison: A (an objective) against B (a reference) on one task and protocol."""

    task: str
    protocol: str
    setting: str  # "default" or "tuned"
    a: Side
    b: Side
    comparison: SeedComparison
    marks: tuple[str, ...] = ()

    def verdict(self, alpha: float = ALPHA) -> str:
        """The verdict word, with the marks in brackets (``beats (pmrl-intra inert in 10/10 seeds)``)."""
        word = verdict(self.comparison, alpha)
        return f"{word} ({'; '.join(self.marks)})" if self.marks else word


def _runs(results: Sequence[RunResult]) -> dict[str, list[Run]]:
    """``{task: runs}`` with their labels and retrieval scores (per-query ranks are not needed here)."""
    labels = config_labels(results)
    tasks: dict[str, list[Run]] = {}
    for r in sorted(results, key=lambda r: (r.task, r.objective, r.config_id, r.seed)):
        if r.status == NOT_APPLICABLE:
            continue
        run = Run(label=labels[(r.task, r.objective, r.config_id)], seed=r.seed, status=r.status, result=r,
                  views=retrieval_views({MAIN_VIEW: r.metrics.retrieval or {}}))
        tasks.setdefault(r.task, []).append(run)
    return dict(sorted(tasks.items()))


def _settings(runs: Sequence[Run]) -> dict[tuple[str, str], dict[str, list[Run]]]:
    """``{(setting, protocol tag): {objective: runs}}``: the default and the tuned configurations of a protocol."""
    out: dict[tuple[str, str], dict[str, list[Run]]] = {}
    for run in runs:
        r = run.result
        tag = protocol_tag(r)
        if r.tuning:
            setting = "tuned"
        elif run.label == f"{display_name(r.objective)} [{tag}]":
            setting = "default"
        else:
            continue  # another configuration of the objective: outside the planned family
        by_objective = out.setdefault((setting, tag), {})
        labels = {x.label for x in by_objective.get(r.objective, [])}
        if labels and run.label not in labels:
            continue  # two tuned configurations with one tag cannot be told apart: keep the first
        by_objective.setdefault(r.objective, []).append(run)
    return dict(sorted(out.items()))


def _pairs(objectives: Iterable[str], references: Sequence[str]) -> list[tuple[str, str]]:
    """(A, reference) for every objective against every reference present, each reference pair once."""
    present = set(objectives)
    pairs = []
    for i, ref in enumerate(references):
        if ref not in present:
            continue
        earlier = set(references[:i + 1])
        pairs += [(o, ref) for o in sorted(present - earlier)]
    return pairs


def _marks(runs: Sequence[Run], seeds: Sequence[int]) -> list[str]:
    """``"<objective> inert in k/n seeds"`` and ``"<objective> collapsed: <modality> in k/n, ... seeds"`` over the
    runs of the compared seeds."""
    compared = {r.seed: r for r in reversed(runs) if r.status == "ok" and r.seed in seeds}
    if not compared:
        return []
    marks = [run_marks(r.result) for r in compared.values()]
    name, n, out = display_name(runs[0].result.objective), len(compared), []
    inert = sum(m.inert for m in marks)
    if inert:
        out.append(f"{name} inert in {inert}/{n} seeds")
    collapsed = sorted({c for m in marks for c in m.collapsed})
    if collapsed:
        per_modality = ", ".join(f"{c} in {sum(c in m.collapsed for m in marks)}/{n}" for c in collapsed)
        out.append(f"{name} collapsed: {per_modality} seeds")
    return out


def planned_comparisons(results: Sequence[RunResult], references: Sequence[str] = REFERENCES,
                        alpha: float = ALPHA) -> list[Planned]:
    """Every planned comparison of ``results``, Holm-corrected together, in a fixed order (task, protocol as on the
    pages, setting, reference order, objective)."""
    planned: list[Planned] = []
    for task, runs in _runs(results).items():
        for group in by_protocol(runs):
            for (setting, _tag), configs in _settings(group.runs).items():
                for a, b in _pairs(configs, references):
                    ra, rb = configs[a], configs[b]
                    c = compare_seeds(seed_scores(ra), seed_scores(rb), ra[0].label, rb[0].label)
                    marks = tuple(_marks(ra, c.seeds) + _marks(rb, c.seeds))
                    planned.append(Planned(task, group.name, setting, Side(a, ra[0].label), Side(b, rb[0].label),
                                           c, marks))
    adjusted = holm([p.comparison for p in planned], alpha)
    return [Planned(p.task, p.protocol, p.setting, p.a, p.b, c, p.marks) for p, c in zip(planned, adjusted)]


def check_references(results: Sequence[RunResult], references: Sequence[str]) -> None:
    """Refuse a reference that names no objective of the results (a typo would silently empty the family)."""
    known = sorted({r.objective for r in results})
    unknown = [ref for ref in references if ref not in known]
    if not references:
        raise UsageError("no reference objective given; pass --references NAME[,NAME...] (default infonce,anchor,gram)")
    if unknown:
        raise UsageError(f"unknown reference objective {', '.join(map(repr, unknown))}; "
                         f"the results hold {', '.join(known) or 'no objective'}")


# -- the document ----------------------------------------------------------------------------------------------

def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), DECIMALS) + 0.0


def _entry(p: Planned, alpha: float) -> dict[str, object]:
    c = p.comparison
    return {
        "task": p.task, "protocol": p.protocol, "setting": p.setting,
        "a": {"objective": p.a.objective, "label": p.a.label}, "b": {"objective": p.b.objective, "label": p.b.label},
        "seeds": list(c.seeds), "differences": [_round(d) for d in c.differences], "mean": _round(c.mean),
        "interval": None if c.interval is None else [_round(x) for x in c.interval],
        "p_value": _p(c.p_value), "p_sign_flip": _p(c.p_sign_flip), "p_adjusted": _p(c.p_adjusted),
        "agree": c.agree, "n": c.n, "min_detectable": _round(c.min_detectable),
        "verdict": p.verdict(alpha), "marks": list(p.marks),
    }


def _p(value: float | None) -> float | None:
    return None if value is None else sig(value)


def verdicts_json(planned: Sequence[Planned], references: Sequence[str] = REFERENCES, alpha: float = ALPHA) -> str:
    """``verdicts.json``: sorted keys, the comparisons in the order given, a newline at the end."""
    document = {
        "version": 1, "alpha": alpha, "family_size": family_size(planned), "references": list(references),
        "test": TEST, "min_agree": MIN_AGREE, "min_seeds": MIN_SEEDS,
        "comparisons": [_entry(p, alpha) for p in planned],
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def family_size(planned: Sequence[Planned]) -> int:
    """The comparisons that were tested (Holm's m); those with too few seeds are listed but not counted."""
    return sum(p.comparison.p_value is not None for p in planned)


# -- the page --------------------------------------------------------------------------------------------------

def points(value: float) -> str:
    """A fraction as signed percentage points, one decimal: ``+3.2``."""
    return "–" if not math.isfinite(value) else f"{value * 100:+.1f}"


def _delta(c: SeedComparison) -> str:
    shown = points(c.mean)
    return shown + (f" [{points(c.interval[0])}, {points(c.interval[1])}]" if c.interval is not None else "")


def _spread(c: SeedComparison) -> str:
    return f"{points(min(c.differences))}..{points(max(c.differences))}" if c.differences else "–"


def verdict_cell(c: SeedComparison, word: str, marks: Sequence[str] = ()) -> str:
    """The verdict as a page shows it: no difference says what could have been detected, too few seeds how many."""
    if word == NO_DIFFERENCE and c.min_detectable is not None:
        word += f" (smallest detectable: {c.min_detectable * 100:.1f} points)"
    elif word == TOO_FEW:
        word += f" ({c.n} in common, {MIN_SEEDS} needed)"
    return word + (f" ({'; '.join(marks)})" if marks else "")


def comparison_cells(c: SeedComparison) -> list[str]:
    """Δ [t-interval], per-seed min..max, agree n/N, p (t), sign-flip p, Holm p."""
    agree = f"{c.agree}/{c.n}" if c.n else "–"
    return [_delta(c), _spread(c), agree, format_p(c.p_value), format_p(c.p_sign_flip), format_p(c.p_adjusted)]


def _table(planned: Sequence[Planned], alpha: float) -> str:
    body = [[code(display_name(p.a.objective)), code(display_name(p.b.objective)), p.setting,
             *comparison_cells(p.comparison), text(verdict_cell(p.comparison, verdict(p.comparison, alpha), p.marks))]
            for p in planned]
    headers = ["objective", "reference", "setting", "Δ mean R@1 (points) [95% t-interval]", "per-seed Δ min..max",
               "seeds agreeing", "p (t over seeds)", "sign-flip p", "Holm p", "verdict"]
    return markdown(body, headers)


def _header(planned: Sequence[Planned], references: Sequence[str], alpha: float) -> list[str]:
    m = family_size(planned)
    level = f" (at the Bonferroni level α/{m})" if m else ""
    return [
        "# pmrl-bench verdicts: planned comparisons", "",
        "Generated from result files by `pmrl-bench leaderboard` (also `pmrl-bench verdicts`); do not edit by hand.",
        "",
        f"Reference objectives: {', '.join(code(r) for r in references)}. For every task and protocol, each "
        "objective's default configuration meets each reference's default, and each tuned configuration the "
        "reference tuned the same way; the references meet each other once. A is the objective, B the reference; "
        "Δ = A − B of mean cosine R@1 (over the retrieval directions) in percentage points, one difference per "
        "seed both finished.", "",
        f"The unit of inference is the training run (the seed). p: paired t-test over the per-seed differences, "
        f"with a 95% t-interval of their mean; sign-flip p: the exact sign-flip test over seeds, which assumes "
        f"nothing about their distribution. Holm p: Holm's correction applied once over the whole family of {m} "
        f"tested comparisons (every task and protocol together), α = {alpha}. `beats` / `loses to`: Holm p below α "
        f"and at least {MIN_AGREE:.0%} of the seeds agree in sign with the mean, so one lucky seed cannot decide; "
        "otherwise `no detectable difference`, given with the smallest difference this spread and seed count "
        f"could have detected{level}; fewer than {MIN_SEEDS} seeds in common: not tested.", "",
        "Marks: a configuration with runs that did not train (inert: the loss never moved or the gradient stayed "
        "negligible) or whose test embeddings of a modality collapsed is named beside its verdict.", "",
    ]


def verdicts_page(planned: Sequence[Planned], references: Sequence[str] = REFERENCES, alpha: float = ALPHA) -> str:
    """``verdicts.md``: the header, then a table per task and protocol."""
    lines = _header(planned, references, alpha)
    groups: dict[tuple[str, str], list[Planned]] = {}
    for p in planned:
        groups.setdefault((p.task, p.protocol), []).append(p)
    if not groups:
        lines += ["No planned comparison: no task has a reference objective and another objective.", ""]
    for (task, protocol), entries in groups.items():
        lines += [f"## {code(task)}, protocol {code(protocol)}", "", _table(entries, alpha), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def verdict_files(results: Sequence[RunResult], references: Sequence[str] = REFERENCES,
                  alpha: float = ALPHA) -> dict[str, str]:
    """``{"verdicts.md": page, "verdicts.json": document}`` of ``results``."""
    planned = planned_comparisons(results, references, alpha)
    return {PAGE: verdicts_page(planned, references, alpha), DOCUMENT: verdicts_json(planned, references, alpha)}


def counts(planned: Sequence[Planned], alpha: float = ALPHA) -> Mapping[str, int]:
    """How many comparisons got each verdict word (marks left aside)."""
    out: dict[str, int] = {}
    for p in planned:
        word = verdict(p.comparison, alpha)
        out[word] = out.get(word, 0) + 1
    return dict(sorted(out.items()))
