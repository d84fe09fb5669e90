"""Plan a sweep (validate everything up front) and execute it run by run."""

from __future__ import annotations

import datetime as dt
import platform
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from pmrl_bench.components import TaskData
from pmrl_bench.errors import UnknownNameError, UsageError
from pmrl_bench.params import Overrides, coerce
from pmrl_bench.registry import Registry
from pmrl_bench.results import ResultStore, RunResult
from pmrl_bench.runner.checks import check_task_data
from pmrl_bench.runner.shard import Shard, select_shard
from pmrl_bench.runner.spec import Budget, EncoderChoice, RunSpec


@dataclass
class SweepConfig:
    objectives: list[str]
    tasks: list[str]
    seeds: int = 3
    budget: Budget = field(default_factory=Budget)
    overrides: Overrides = field(default_factory=dict)
    encoders: dict[str, str] = field(default_factory=dict)  # modality -> encoder name
    device: str = "auto"
    rerun: bool = False
    progress: bool = True
    probe_every: int = 25
    command: str = ""
    precision: str = "auto"  # encoders' autocast: auto (bf16/fp16 on CUDA, fp32 on CPU), fp32, bf16, fp16
    shard: Shard | None = None  # run only this deterministic 1/N of the plan (--shard I/N)


@dataclass
class SweepPlan:
    specs: list[RunSpec]
    data: dict[str, TaskData]


@dataclass
class SweepSummary:
    ok: int = 0
    diverged: int = 0
    failed: int = 0
    skipped: int = 0
    written: list[Path] = field(default_factory=list)

    @property
    def all_ok(self) -> bool:
        return self.diverged == 0 and self.failed == 0


def _resolved_params(registry: Registry, kind: str, name: str, overrides: Overrides) -> dict[str, Any]:
    component = registry.get(kind, name)  # type: ignore[arg-type]
    raw = overrides.get((kind, name), {})
    typed = {key: coerce(component, key, value) for key, value in raw.items()}
    return component.resolve_params(typed)


def plan_sweep(config: SweepConfig, registry: Registry) -> SweepPlan:
    """Check every name, parameter, budget and task before the first step trains."""
    config.budget.validate()
    if config.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {config.seeds}")
    if not config.objectives:
        raise UsageError("no objectives selected; available: " + ", ".join(registry.names("objective")))
    if not config.tasks:
        raise UsageError("no tasks selected; available: " + ", ".join(registry.names("task")))
    for name in config.objectives:
        registry.get("objective", name)
    for name in config.tasks:
        registry.get("task", name)
    for (kind, name), _ in config.overrides.items():
        registry.get(kind, name)  # type: ignore[arg-type]

    objective_params = {}
    objectives = {}
    for name in config.objectives:
        params = _resolved_params(registry, "objective", name, config.overrides)
        objectives[name] = registry.get("objective", name).create(**params)  # range checks happen in the factory
        objective_params[name] = params

    data: dict[str, TaskData] = {}
    task_params: dict[str, dict[str, Any]] = {}
    encoders: dict[str, dict[str, EncoderChoice]] = {}
    for name in config.tasks:
        task_params[name] = _resolved_params(registry, "task", name, config.overrides)
        data[name] = registry.get("task", name).create(**task_params[name]).load()
        check_task_data(name, data[name])
        if config.budget.batch_size > len(data[name].train):
            raise UsageError(
                f"--batch-size {config.budget.batch_size} exceeds the {len(data[name].train)} training instances "
                f"of task {name!r}"
            )
        encoders[name] = _choose_encoders(registry, data[name], config)

    all_modalities = {m.name for d in data.values() for m in d.modalities}
    for modality in config.encoders:
        if modality not in all_modalities:
            raise UnknownNameError("modality in --encoder", modality, all_modalities)
    for name, objective in objectives.items():  # e.g. an anchor modality the task does not have
        _check_objective_fits(name, objective, data)

    specs = [
        RunSpec(task, task_params[task], objective, objective_params[objective], encoders[task], config.budget, seed)
        for task in config.tasks
        for objective in config.objectives
        for seed in range(config.seeds)
    ]
    if config.shard is not None:
        specs = select_shard(specs, [s.run_id for s in specs], config.shard)
    return SweepPlan(specs, data)


def _check_objective_fits(name: str, objective: Any, data: dict[str, TaskData]) -> None:
    """Call the objective's optional ``check_modalities(names)`` for every task: bad input fails before training."""
    check = getattr(objective, "check_modalities", None)
    if not callable(check):
        return
    for task, task_data in data.items():
        try:
            check([m.name for m in task_data.modalities])
        except (ValueError, LookupError) as exc:
            raise UsageError(f"objective {name!r} cannot run on task {task!r}: {exc}") from exc


def _choose_encoders(registry: Registry, data: TaskData, config: SweepConfig) -> dict[str, EncoderChoice]:
    chosen = {}
    for modality in data.modalities:
        if modality.name in config.encoders:
            component = registry.get("encoder", config.encoders[modality.name])
        else:
            component = registry.default_encoder_for(modality.kind)
        kinds = component.metadata.get("modality_kinds", ())
        if kinds and modality.kind not in kinds:
            raise UsageError(
                f"encoder {component.name!r} accepts {', '.join(kinds)} modalities, but {modality.name!r} is {modality.kind!r}"
            )
        params = _resolved_params(registry, "encoder", component.name, config.overrides)
        chosen[modality.name] = EncoderChoice(component.name, params)
    return chosen


def collect_versions(plugin_versions: dict[str, str | None]) -> dict[str, Any]:
    def installed(dist: str) -> str | None:
        try:
            return version(dist)
        except PackageNotFoundError:
            return None

    from pmrl_bench import __version__

    return {
        "pmrl_bench": __version__,
        "python": platform.python_version(),
        "torch": installed("torch"),
        "numpy": installed("numpy"),
        "scikit-learn": installed("scikit-learn"),
        "plugins": dict(sorted(plugin_versions.items())),
    }


def execute_sweep(
    plan: SweepPlan,
    config: SweepConfig,
    registry: Registry,
    store: ResultStore,
    versions: dict[str, Any],
    monitor_factory: Callable[[], Sequence[Any]] | None = None,
) -> SweepSummary:
    """Run every planned run, skipping valid existing results unless ``rerun``. A failing run never stops the sweep."""
    from pmrl_bench.runner.device import resolve_device
    from pmrl_bench.runner.train import RunOutcome, train_and_evaluate
    from pmrl_bench.stability import default_monitors

    from pmrl_bench.runner import distributed
    from pmrl_bench.runner.device import autocast_dtype, describe

    device = resolve_device(config.device)
    autocast_dtype(device, config.precision)  # bad --precision fails before anything trains
    world = distributed.from_environment()  # several processes when launched by torchrun
    distributed.check_batch_size(world, config.budget.batch_size)
    device = distributed.initialise(world, device)
    store.ensure_writable()
    monitor_factory = monitor_factory or default_monitors
    summary = SweepSummary()
    for spec in tqdm(plan.specs, desc="sweep", unit="run", disable=not config.progress or None):
        done = not config.rerun and store.existing(spec.task, spec.objective, spec.config_id, spec.seed)
        if distributed.broadcast(bool(done), world):  # under torchrun, rank 0 decides for every rank
            summary.skipped += 1
            continue
        started = time.perf_counter()
        try:
            outcome = train_and_evaluate(
                spec, plan.data[spec.task], registry, device, monitor_factory(),
                probe_every=config.probe_every, progress=config.progress,
                precision=config.precision, world=world,
            )
        except Exception as exc:  # a broken objective or plugin fails its own run only
            last = traceback.extract_tb(exc.__traceback__)[-1]
            outcome = RunOutcome(
                "failed", error=f"{type(exc).__name__}: {exc} (at {Path(last.filename).name}:{last.lineno})"
            )
        result = RunResult(
            run_id=spec.run_id,
            config_id=spec.config_id,
            task=spec.task,
            objective=spec.objective,
            params=spec.params(),
            seed=spec.seed,
            status=outcome.status,  # type: ignore[arg-type]
            metrics=outcome.metrics,
            stability=outcome.stability,
            versions=versions,
            device=describe(device, autocast_dtype(device, config.precision)),
            error=outcome.error,
            diverged_step=outcome.diverged_step,
            duration_s=round(time.perf_counter() - started, 3),
            created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            command=config.command,
        )
        if world.is_main:  # rank 0 writes the result; the other ranks only helped train
            summary.written.append(store.write(result))
        setattr(summary, outcome.status, getattr(summary, outcome.status) + 1)
    return summary
