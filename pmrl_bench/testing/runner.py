"""Checks through the real machinery: one run through the runner, and a distribution's entry points."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pmrl_bench import plugins as _plugins
from pmrl_bench.errors import UsageError
from pmrl_bench.registry import Registry
from pmrl_bench.testing.common import ContractViolation
from pmrl_bench.testing.helpers import REFERENCE_OBJECTIVE, TINY_TASK

if TYPE_CHECKING:
    from pmrl_bench.results import RunResult


def _raw(value: Any) -> str:
    """A parameter as ``--set`` would spell it, so it goes through the same coercion as the CLI."""
    return value if isinstance(value, str) else json.dumps(value)


def run_one_step(
    registry: Registry,
    results_dir: str | Path,
    *,
    objective: str = REFERENCE_OBJECTIVE,
    task: str = TINY_TASK,
    objective_params: Mapping[str, Any] | None = None,
    task_params: Mapping[str, Any] | None = None,
    encoders: Mapping[str, str] | None = None,
    encoder_params: Mapping[str, Mapping[str, Any]] | None = None,
    steps: int = 1,
    batch_size: int = 8,
    dim: int = 16,
    seed: int = 0,
) -> RunResult:
    """Plan and execute one run through ``plan_sweep``/``execute_sweep`` (CPU, no progress bars) and return its
    stored result; a run that does not end ``ok`` is a :class:`ContractViolation` carrying the run's error."""
    from pmrl_bench.results import ResultStore
    from pmrl_bench.runner.spec import Budget
    from pmrl_bench.runner.executor import collect_versions
    from pmrl_bench.runner.sweep import execute_sweep
    from pmrl_bench.runner.sweep_plan import SweepConfig, plan_sweep
    from pmrl_bench.stability import default_monitors

    overrides: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, name, values in [("objective", objective, objective_params), ("task", task, task_params)] + [
        ("encoder", name, values) for name, values in (encoder_params or {}).items()
    ]:
        if values:
            overrides.setdefault((kind, name), {}).update({k: _raw(v) for k, v in values.items()})
    what = f"objective {objective!r} on task {task!r}"
    config = SweepConfig(
        objectives=[objective], tasks=[task], seeds=seed + 1,
        budget=Budget(steps=steps, batch_size=batch_size, dim=dim), overrides=overrides,
        encoders=dict(encoders or {}), device="cpu", progress=False, command="pmrl_bench.testing.run_one_step",
    )
    try:
        plan = plan_sweep(config, registry)
    except UsageError as exc:
        raise ContractViolation(f"the runner rejected {what} before training: {exc}") from None
    plan.specs = [spec for spec in plan.specs if spec.seed == seed]  # the planned seeds are 0..seed
    store = ResultStore(results_dir)
    summary = execute_sweep(plan, config, registry, store, collect_versions({}), default_monitors)
    result = store.read(summary.written[0])
    if result.status != "ok":
        raise ContractViolation(
            f"{steps} training step(s) of {what} through the runner ended {result.status!r}: {result.error}"
        )
    if not result.metrics.retrieval or not all(
        math.isfinite(v) for scores in result.metrics.retrieval.values() for v in scores.values()
    ):
        raise ContractViolation(f"the run of {what} ended ok but its retrieval metrics are missing or not finite")
    return result


# -- entry points ---------------------------------------------------------------------------------------------------


def check_entry_points(distribution: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """The installed ``distribution`` has ``pmrl_bench`` entry points that load and register something.

    Returns ``{kind: [names]}`` of what it registered. Needs the package installed (``pip install -e .``).
    """
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ContractViolation(f"distribution {distribution!r} is not installed; run 'pip install -e .'") from None
    points = [ep for ep in dist.entry_points if ep.group == _plugins.ENTRY_POINT_GROUP]
    if not points:
        raise ContractViolation(
            f"distribution {distribution!r} declares no entry point in the {_plugins.ENTRY_POINT_GROUP!r} group; add "
            f"[project.entry-points.{_plugins.ENTRY_POINT_GROUP}] to its pyproject.toml and reinstall"
        )
    monkeypatch.setenv(_plugins.ENV_LOAD_PLUGINS, distribution)
    monkeypatch.setenv(_plugins.ENV_STRICT, "1")
    manager = _plugins.PluginManager()
    try:
        registry = manager.registry
    except UsageError as exc:
        raise ContractViolation(f"distribution {distribution!r}: {exc}") from None
    registered: dict[str, list[str]] = {}
    for component in registry.components():
        if component.distribution == distribution:
            registered.setdefault(component.kind, []).append(component.name)
    if not registered:
        raise ContractViolation(f"distribution {distribution!r} loaded but registered no objective, encoder or task")
    return registered

