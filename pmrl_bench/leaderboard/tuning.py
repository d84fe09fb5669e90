"""The tuning behind tuned configurations: each study's budget and its best-so-far curve, read from the
tuned-parameter files under ``<results>/_tuning`` (so the pages still rebuild from the results directory alone)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pmrl_bench.composite import display_name
from pmrl_bench.leaderboard.md import code, image, text
from pmrl_bench.leaderboard.plots import plot_names, tuning_figure
from pmrl_bench.leaderboard.tables import markdown
from pmrl_bench.tuning.records import TunedParams

Record = tuple[Path, TunedParams]


def for_protocol(records: Sequence[Record], task: str, protocol: str) -> list[Record]:
    return [(p, r) for p, r in records if r.task == task and r.protocol == protocol.split("#")[0]]


def tuning_section(records: Sequence[Record], stem: str, level: str = "###") -> list[str]:
    if not records:
        return []
    body = []
    for _, r in sorted(records, key=lambda pr: (pr[1].objective, pr[1].study)):
        best = r.best
        shown = "–" if best is None else ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for part in best.params.values() for k, v in part.items())
        failed = sum(1 for t in r.trials if t.status != "ok")
        defaults = r.defaults_trial
        found = "–" if best is None else f"#{best.number}" + (" (still improving)" if r.still_improving else "")
        body.append([code(display_name(r.objective)), f"{len(r.trials)}/{r.trials_requested}", str(failed),
                     r.sampler, str(r.sampler_seed), str(r.trial_seed), text(r.metric),
                     "–" if defaults is None else f"{100 * defaults.value:.1f}",
                     "–" if best is None else f"{100 * best.value:.1f}", found, text(shown)])
    budgets = {len(r.trials) for _, r in records}
    samplers = {(r.sampler, r.sampler_seed, r.metric) for _, r in records}
    fairness = ("Every objective had the same tuning budget, sampler, seed and metric."
                if len(budgets) == 1 and len(samplers) == 1 else
                "⚠ The studies differ in budget, sampler, seed or metric: "
                "their tuned rows are not compared on equal terms.")
    lines = [f"{level} Tuning", "",
             "Studies of `pmrl-bench tune`: trials scored on the validation split (the test split is never read), "
             "each trial one training run; a trial that diverged or failed scored 0 and counts. "
             f"{fairness} Tuned rows above train with each study's best parameters on the usual seeds.", "",
             "`defaults (%)`: trial 0, which trains the published defaults, so a study's best is never below it. "
             "`best trial`: the trial that found the best value; *still improving* marks a study whose best came in "
             "its last fifth of trials, where more trials may still find better values. The trials train on their "
             "own seed (`trial seed`), which no test run uses.", "",
             markdown(body, ["objective", "trials", "failed", "sampler", "sampler seed", "trial seed",
                             "metric (validation)", "defaults (%)", "best (%)", "best trial", "best parameters"]), ""]
    lines += [image("best validation score so far per trial", plot_names(stem)["tuning"]), ""]
    return lines


def tuning_plot(task: str, records: Sequence[Record], stem: str) -> dict[str, bytes]:
    if not records:
        return {}
    studies = {f"{display_name(r.objective)} ({r.study_id[:6]})"
               if sum(1 for _, o in records if o.objective == r.objective) > 1
               else display_name(r.objective): [t.value for t in r.trials] for _, r in records}
    png = tuning_figure(task, studies)
    return {} if png is None else {plot_names(stem)["tuning"]: png}
