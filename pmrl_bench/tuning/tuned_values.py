"""Values read from a tuned-parameter file (``run --tuned``, ``--params-from``) pass the command line's checks.

A tuned-parameter file is input like any other: copied between machines, edited by hand, attached to a bug report. Its
best trial's values are coerced to each parameter's type exactly as ``--set`` values are, the objective is built
with them once (its factory's range checks), and the learning rate and weight decay pass the budget's checks, all
before anything trains; anything else is one line naming the file, the trial and the value.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from pmrl_bench.errors import UsageError
from pmrl_bench.params import coerce
from pmrl_bench.registry import Registry
from pmrl_bench.runner.spec import Budget, RunSpec
from pmrl_bench.runner.sweep_plan import build_objective_for_checks
from pmrl_bench.tuning.records import TunedParams
from pmrl_bench.tuning.space import BUDGET_SPACE

PARTS = ("objective", "budget")


def checked_best(spec: RunSpec, path: Path, record: TunedParams,
                 registry: Registry) -> tuple[dict[str, Any], Budget]:
    """``(objective parameters, budget)`` of ``spec`` with the record's best trial applied, every value checked."""
    assert record.best is not None
    where = f"tuned-parameter file {str(path)!r}, best trial {record.best.number}"
    if spec.seed == record.trial_seed:
        raise UsageError(f"{where}: seed {spec.seed} is the seed every trial of its study trained with; test a tuned "
                         f"configuration on other seeds (--seeds), or tune with another --seed")
    params = record.best.params
    for part in params:
        if part not in PARTS:
            raise UsageError(f"{where}: unexpected part {part!r}; a trial holds {' and '.join(PARTS)} parameters")
    objective, budget = params.get("objective", {}), params.get("budget", {})
    for part, values in (("objective", objective), ("budget", budget)):
        if not isinstance(values, dict):
            raise UsageError(f"{where}: {part} must be an object of parameters, got {type(values).__name__}")
    merged = {**spec.objective_params, **_typed_objective(spec.objective, objective, where, registry)}
    try:
        build_objective_for_checks(registry, spec.objective, merged)  # the factory's own range checks
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    return merged, _checked_budget(spec.budget, budget, where)


def _typed_objective(name: str, values: dict[str, Any], where: str, registry: Registry) -> dict[str, Any]:
    """Each value as ``--set objective.NAME.KEY=VALUE`` would give it: the parameter's type, finite numbers."""
    component = registry.get("objective", name)
    if getattr(component, "part_components", None) is not None:  # a composite: its parts' values are checked by
        return dict(values)  # resolve_params and the factories of the parts when it is built
    try:
        component.resolve_params(values)  # an unknown key, named with the known ones
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    typed = {}
    for key, value in values.items():
        raw = value if isinstance(value, str) else json.dumps(value)
        typed[key] = coerce(component, key, raw, option=f"{where}: objective.{key}={raw}")
    return typed


def _checked_budget(budget: Budget, values: dict[str, Any], where: str) -> Budget:
    for key, value in values.items():
        if key not in BUDGET_SPACE:
            raise UsageError(f"{where}: budget.{key} is not searched by tune; expected {', '.join(BUDGET_SPACE)}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UsageError(f"{where}: budget.{key}={json.dumps(value)}: expected a number")
    checked = replace(budget, **{key: float(value) for key, value in values.items()})
    checked.validate(where)
    return checked
