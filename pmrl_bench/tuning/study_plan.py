"""From command-line options to studies (``tune``), and from tuned-parameter files to runs (``run --tuned``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pmrl_bench.console import say
from pmrl_bench.errors import UsageError
from pmrl_bench.registry import Registry
from pmrl_bench.results.store import TUNING_DIR
from pmrl_bench.runner.sweep_plan import MAX_RUNS, SweepConfig, SweepPlan, plan_sweep
from pmrl_bench.runner.spec import RunSpec
from pmrl_bench.tuning.records import TunedParams, read_record
from pmrl_bench.tuning.space import BUDGET_SPACE
from pmrl_bench.tuning.study import Study, TuneSettings, check_metric, check_space_builds, objective_space
from pmrl_bench.tuning.tuned_values import checked_best


def plan_tuning(config: SweepConfig, settings: TuneSettings, registry: Registry,
                root: Path) -> tuple[list[Study], SweepPlan]:
    """Every check before the first trial: names, budget, protocol, tasks, metric and each objective's space."""
    settings.validate()
    plan = plan_sweep(replace(config, seeds=1, shard=None), registry)
    if len(plan.specs) * settings.trials > MAX_RUNS:  # every trial trains a run, as every seed of a sweep does
        raise UsageError(f"--trials {settings.trials} for each of {len(plan.specs)} studies makes "
                         f"{len(plan.specs) * settings.trials} trials; a tune holds at most {MAX_RUNS}: "
                         "use fewer trials, objectives or tasks")
    check_metric(settings.metric, plan.data)
    studies = []
    told: set[str] = set()
    for spec in plan.specs:
        if (spec.task, spec.objective) in plan.not_applicable:  # announced by the plan; nothing to tune there
            continue
        space = objective_space(registry, spec.objective)
        check_space_builds(registry, spec.objective, spec.objective_params, space)
        if not space and spec.objective not in told:
            told.add(spec.objective)
            _say_unsearched(spec.objective, spec.objective_params)
        studies.append(Study(replace(spec, seed=settings.trial_seed), space, settings, root))
    return studies, plan


def unsearched_parameters(params: dict[str, Any], prefix: str = "") -> list[str]:
    """``["temperature=0.07", ...]``: the parameters a study leaves at their values (a weighted sum's by part);
    ``dim`` is the runner's (``--dim``), not the objective's to search."""
    if "parts" in params and isinstance(params["parts"], dict):  # a weighted sum: its parts' own parameters
        return [item for part, values in params["parts"].items()
                for item in unsearched_parameters(values, f"{prefix}{part}.")]
    return [f"{prefix}{key}={value}" for key, value in params.items() if key != "dim"]


def _say_unsearched(objective: str, params: dict[str, Any]) -> None:
    """One line naming what a study of an objective without a search space does not search."""
    left = unsearched_parameters(params)
    if left:
        say(f"objective {objective!r} declares no search space: tune searches the learning rate and weight decay "
            f"only and leaves {', '.join(left)} at their values")


def _context_of(spec: RunSpec, record: TunedParams) -> dict[str, Any]:
    """The context a study would record for ``spec`` had it searched the record's space."""
    searched = set(record.space.get("objective", {}))
    params = spec.params()
    return {"task": spec.task, "objective": spec.objective, "task_params": params["task"],
            "encoders": params["encoders"],
            "budget": {k: v for k, v in params["budget"].items() if k not in BUDGET_SPACE},
            "objective_fixed": {k: v for k, v in params["objective"].items() if k not in searched},
            "protocol": params["protocol"], "selection": params["selection"], "evaluation": params["evaluation"]}


def _difference(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> str:
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
                return _difference(a[key], b[key], f"{prefix}{key}.")
            return f"{prefix}{key} is {a.get(key)!r} here, {b.get(key)!r} in the study"
    return ""


def tuned(spec: RunSpec, path: Path, record: TunedParams, root: Path, registry: Registry | None = None) -> RunSpec:
    """``spec`` with the record's best parameters, each checked as on the command line (``registry``: where the
    objective is found, the plugin manager's by default), and the tuning provenance that labels it."""
    if record.best is None or record.best.status != "ok":
        raise UsageError(f"tuned-parameter file {str(path)!r} has no successful trial (every trial failed or "
                         "diverged); tune again, e.g. with other --set values or a smaller --lr")
    if not record.complete:
        raise UsageError(f"study {record.study} has {len(record.trials)} of {record.trials_requested} trials; "
                         "finish it with the same 'pmrl-bench tune' command first")
    if registry is None:
        from pmrl_bench.plugins import get_registry

        registry = get_registry()
    objective_params, budget = checked_best(spec, path, record, registry)
    try:
        provenance_path = path.relative_to(root)
    except ValueError:
        provenance_path = Path(path.name)
    return replace(
        spec,
        objective_params=objective_params,
        budget=budget,
        tuning={"study": record.study, "trials": len(record.trials), "sampler": record.sampler,
                "seed": record.sampler_seed, "metric": record.metric, "split": record.split,
                "best_trial": record.best.number, "file": provenance_path.as_posix()},
    )


def apply_tuned(plan: SweepPlan, root: Path, files: list[Path], use_results: bool,
                registry: Registry | None = None) -> SweepPlan:
    """Replace each run's parameters by the tuned ones: from ``files`` (``--params-from``) and, with
    ``use_results`` (``--tuned``), from the matching study under ``<root>/_tuning``. A run with no match is bad
    input."""
    explicit = [(p, read_record(p)) for p in files]
    used = set()
    specs = []
    for spec in plan.specs:
        if (spec.task, spec.objective) in plan.not_applicable:  # recorded as not applicable: nothing was tuned
            specs.append(spec)
            continue
        candidates = [(p, r) for p, r in explicit if (r.task, r.objective) == (spec.task, spec.objective)]
        if not candidates and use_results:
            directory = root / TUNING_DIR / spec.task / spec.objective
            candidates = [(p, read_record(p)) for p in sorted(directory.glob("*.json"))] if directory.is_dir() else []
        if not candidates and explicit and not use_results:
            specs.append(spec)  # --params-from covers other objectives; this one keeps its parameters
            continue
        matching = [(p, r) for p, r in candidates if _context_of(spec, r) == r.context]
        if not matching:
            why = _difference(_context_of(spec, candidates[0][1]), candidates[0][1].context) if candidates else ""
            raise UsageError(
                f"no tuned parameters for objective {spec.objective!r} on task {spec.task!r} under protocol "
                f"{spec.protocol.name!r} with these options" + (f" ({why})" if why else "")
                + "; run 'pmrl-bench tune' with the same options first"
            )
        if len(matching) > 1:
            shown = ", ".join(str(p) for p, _ in matching)
            raise UsageError(f"several studies match objective {spec.objective!r} on task {spec.task!r}: {shown}; "
                             "choose one with --params-from FILE")
        path, record = matching[0]
        used.add(path)
        specs.append(tuned(spec, path, record, root, registry))
    for path, record in explicit:
        if path not in used:
            say(f"warning: {path} ({record.task}/{record.objective}) matches no run of this sweep")
    return replace(plan, specs=specs)
