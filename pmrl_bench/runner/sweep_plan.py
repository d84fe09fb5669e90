"""Plan a sweep: check every name, parameter, budget, protocol and task before the first step trains."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pmrl_bench.components import Modality, TaskData
from pmrl_bench.errors import DataError, UnknownNameError, UsageError
from pmrl_bench.params import Overrides, coerce
from pmrl_bench.registry import Component, Registry
from pmrl_bench.runner.checks import check_task_data
from pmrl_bench.runner.fingerprint import data_fingerprint
from pmrl_bench.runner.shard import Shard, select_shard
from pmrl_bench.runner.spec import SELECTION_RULES, Budget, EncoderChoice, InitStage, Protocol, RunSpec
from pmrl_bench.splits import DEFAULT_VAL_SIZE, split_sizes, with_validation

PROBES = ("torch", "sklearn")
# Below this many test instances the retrieval metrics say little: chance R@10 is 10/n (100% at n = 10).
SMALL_TEST_SPLIT = 100
# The most runs one sweep may plan (objectives x tasks x seeds): every run is held in memory while planning.
MAX_RUNS = 100_000
_INIT = re.compile(r"^\s*([^:\s]+)\s*:\s*(\d+)\s*$")


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
    init: str | None = None  # --init OBJECTIVE:STEPS (warm start)
    init_lr: float | None = None  # the init stage's learning rate (default: the sweep's)
    init_settings: dict[str, str] = field(default_factory=dict)  # --init-set KEY=VALUE: the init objective's params
    init_checkpoint: Path | None = None  # --init-checkpoint PATH (safetensors)
    selection: str = "last"  # --select last|best
    probe: str = "torch"  # --probe torch|sklearn
    jobs: int | str = 1  # --jobs N|auto: runs trained at once, in worker processes (runner.parallel)
    threads: int = 1  # --threads N: torch intra-op threads of each run (results depend on it, so it is fixed)
    compile: bool = False  # --compile: torch.compile the encoders' training forward (CUDA graphs on CUDA)


@dataclass
class SweepPlan:
    specs: list[RunSpec]
    data: dict[str, TaskData]
    fingerprints: dict[str, str] = field(default_factory=dict)  # task -> data fingerprint
    splits: dict[str, dict[str, int]] = field(default_factory=dict)  # task -> split sizes, counted while planning


def resolved_params(
    registry: Registry, kind: str, name: str, overrides: Overrides, dim: int | None = None
) -> dict[str, Any]:
    """A component's defaults overlaid with its ``--set`` values, each coerced to the parameter's type.

    An objective whose factory takes ``dim`` gets the embedding dimension (``--dim``), as encoders do. A composite
    objective (``infonce+0.1*pmrl``) resolves each part with the part's own ``--set`` values.
    """
    component = registry.get(kind, name)  # type: ignore[arg-type]
    raw = overrides.get((kind, name), {})
    parts = getattr(component, "part_components", None)  # a composite objective
    if parts is not None:
        if raw:
            raise UsageError(f"--set objective.{name}.{next(iter(raw))}: set a part's parameters instead, "
                             f"e.g. --set objective.{parts[-1].name}.KEY=VALUE")
        return component.resolve_params(
            {"parts": {p.name: resolved_params(registry, kind, p.name, overrides, dim) for p in parts}}
        )
    typed = {key: coerce(component, key, value) for key, value in raw.items()}
    return _with_dim(component, component.resolve_params(typed), typed, dim)


def _with_dim(component: Component, params: dict[str, Any], typed: dict[str, Any], dim: int | None) -> dict[str, Any]:
    """Supply an objective's ``dim`` parameter, if it has one (or a composite's parts): the embedding dimension."""
    if component.kind != "objective" or dim is None:
        return params
    parts = getattr(component, "part_components", None)
    if parts is not None:
        return {**params, "parts": {p.name: _with_dim(p, params["parts"][p.name], {}, dim) for p in parts}}
    if "dim" not in component.parameters():
        return params
    if "dim" in typed and typed["dim"] != dim:
        raise UsageError(f"objective {component.name!r}: dim={typed['dim']} differs from the embedding dimension "
                         f"--dim {dim}; leave dim unset, the runner supplies it")
    return {**params, "dim": dim}


def plan_sweep(config: SweepConfig, registry: Registry) -> SweepPlan:
    """Check every name, parameter, budget, protocol and task before the first step trains."""
    config.budget.validate()
    if config.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {config.seeds}")
    objective_names = list(dict.fromkeys(config.objectives))  # a name given twice is one run, not two
    task_names = list(dict.fromkeys(config.tasks))
    runs = len(objective_names) * len(task_names) * config.seeds
    if runs > MAX_RUNS:
        raise UsageError(f"--seeds {config.seeds} with {len(objective_names)} objective(s) and {len(task_names)} "
                         f"task(s) makes {runs} runs; a sweep holds at most {MAX_RUNS}: use fewer seeds")
    if config.selection not in SELECTION_RULES:
        raise UsageError(f"--select must be one of {', '.join(SELECTION_RULES)}, got {config.selection!r}")
    if config.probe not in PROBES:
        raise UsageError(f"--probe must be one of {', '.join(PROBES)}, got {config.probe!r}")
    from pmrl_bench.runner.jobs import check_threads, parse_jobs

    parse_jobs(str(config.jobs))
    check_threads(config.threads)
    if not objective_names:
        raise UsageError("no objectives selected; available: " + ", ".join(registry.names("objective")))
    if not task_names:
        raise UsageError("no tasks selected; available: " + ", ".join(registry.names("task")))
    # the stored name: a composite's canonical form (infonce+0.1*pmrl -> infonce+0.1xpmrl), each once
    objective_names = list(dict.fromkeys(registry.get("objective", name).name for name in objective_names))
    for name in task_names:
        registry.get("task", name)
    for (kind, name), _ in config.overrides.items():
        registry.get(kind, name)  # type: ignore[arg-type]

    objective_params = {}
    objectives = {}
    for name in objective_names:
        params = resolved_params(registry, "objective", name, config.overrides, config.budget.dim)
        instance = build_objective_for_checks(registry, name, params)
        if instance is not None:
            objectives[name] = instance
        objective_params[name] = params
    init_stage = _init_stage(config, registry)
    if init_stage is not None:
        instance = build_objective_for_checks(registry, init_stage.objective, init_stage.objective_params)
        if instance is not None:
            objectives[f"{init_stage.objective} (--init)"] = instance

    data, task_params, encoders = _load_tasks(config, registry, task_names)

    all_modalities = {m.name for d in data.values() for m in d.modalities}
    for modality in config.encoders:
        if modality not in all_modalities:
            raise UnknownNameError("modality in --encoder", modality, all_modalities)
    for name, objective in objectives.items():  # e.g. an anchor modality the task does not have
        _check_objective_fits(name, objective, data)

    protocols = {task: _protocol(config, init_stage, registry, task, data[task], encoders[task]) for task in task_names}
    specs = [
        RunSpec(task, task_params[task], objective, objective_params[objective], encoders[task], config.budget, seed,
                protocol=protocols[task], selection=config.selection, probe=config.probe)
        for task in task_names
        for objective in objective_names
        for seed in range(config.seeds)
    ]
    if config.shard is not None:
        specs = select_shard(specs, [s.run_id for s in specs], config.shard)
    return SweepPlan(specs, data, {task: data_fingerprint(d) for task, d in data.items()},
                     {task: split_sizes(d) for task, d in data.items()})


def _load_tasks(config: SweepConfig, registry: Registry, task_names: list[str],
                ) -> tuple[dict[str, TaskData], dict[str, dict[str, Any]], dict[str, dict[str, EncoderChoice]]]:
    """Load and check every task, carve its validation split and choose (and check) its encoders."""
    data: dict[str, TaskData] = {}
    task_params: dict[str, dict[str, Any]] = {}
    encoders: dict[str, dict[str, EncoderChoice]] = {}
    for name in task_names:
        task_params[name] = resolved_params(registry, "task", name, config.overrides)
        loaded = load_task(registry, name, task_params[name])
        check_task_data(name, loaded)  # before carving a validation split, so errors name the task's own rows
        data[name] = with_validation(loaded, DEFAULT_VAL_SIZE, seed=0)
        if config.budget.batch_size > len(data[name].train):
            raise UsageError(
                f"--batch-size {config.budget.batch_size} exceeds the {len(data[name].train)} training instances "
                f"of task {name!r}"
            )
        encoders[name] = _choose_encoders(registry, data[name], config)
        for modality in data[name].modalities:  # range checks of encoder parameters run now, not in each run
            choice = encoders[name][modality.name]
            build_encoder_for_checks(registry, choice.name, modality, config.budget.dim, choice.params)
        warn_small_test_split(name, len(loaded.test))
    return data, task_params, encoders


def warn_small_test_split(task: str, n_test: int) -> None:
    if n_test < SMALL_TEST_SPLIT:
        print(f"pmrl-bench: warning: task {task!r} has {n_test} test instances: chance R@1 is {1 / n_test:.1%} and "
              f"chance R@10 {min(1.0, 10 / n_test):.0%}; "
              f"retrieval metrics need at least {SMALL_TEST_SPLIT} to say much",
              file=sys.stderr)


def build_objective_for_checks(registry: Registry, name: str, params: dict[str, Any]) -> Any:
    """Build an objective once while planning, so its range checks run before training; None on a plugin bug
    (not bad input: each of its runs is then recorded as failed and the sweep goes on)."""
    try:
        return registry.get("objective", name).create(**params)
    except UsageError:
        raise
    except Exception:  # noqa: BLE001
        return None


def build_encoder_for_checks(registry: Registry, name: str, modality: Modality, dim: int,
                             params: dict[str, Any]) -> None:
    """Build an encoder once while planning, so a parameter it rejects (``hidden=0``, ``dropout=2``) is bad input
    before training; a plugin bug is left to its runs, which are recorded as failed (as for objectives)."""
    try:
        registry.get("encoder", name).create(modality=modality, dim=dim, **params)
    except UsageError as exc:
        raise UsageError(f"{exc} (modality {modality.name!r})") from None
    except Exception:  # noqa: BLE001
        return


def parse_init(text: str) -> tuple[str, int]:
    """``"infonce:300"`` -> ``("infonce", 300)``."""
    match = _INIT.match(text)
    if not match or int(match[2]) < 1:
        raise UsageError(f"--init must be OBJECTIVE:STEPS with STEPS >= 1 (e.g. infonce:300), got {text!r}")
    return match[1], int(match[2])


def _init_stage(config: SweepConfig, registry: Registry) -> InitStage | None:
    if config.init is None:
        if config.init_lr is not None or config.init_settings:
            raise UsageError("--init-lr and --init-set need --init OBJECTIVE:STEPS")
        return None
    if config.init_checkpoint is not None:
        raise UsageError("--init and --init-checkpoint exclude each other: train an init stage or start from a file")
    objective, steps = parse_init(config.init)
    component = registry.get("objective", objective)
    typed = {key: coerce(component, key, value, option=f"--init-set {key}={value}")
             for key, value in config.init_settings.items()}
    params = _with_dim(component, component.resolve_params(typed), typed, config.budget.dim)
    budget = replace(config.budget, steps=steps, lr=config.budget.lr if config.init_lr is None else config.init_lr)
    budget.validate("--init")
    return InitStage(component.name, params, budget)


def _protocol(config: SweepConfig, init_stage: InitStage | None, registry: Registry, task: str, data: TaskData,
              encoders: dict[str, EncoderChoice]) -> Protocol:
    if init_stage is not None:
        return Protocol("warm", init=init_stage)
    if config.init_checkpoint is None:
        return Protocol()
    from pmrl_bench.runner import checkpoints

    state, _ = checkpoints.read(config.init_checkpoint)
    checkpoints.check_fits(state, checkpoints.encoder_shapes(registry, data, encoders, config.budget.dim),
                           config.init_checkpoint, task)
    return Protocol("checkpoint", checkpoint_sha256=checkpoints.tensors_sha256(state),
                    checkpoint_path=str(config.init_checkpoint))


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


def load_task(registry: Registry, name: str, params: dict[str, Any]) -> TaskData:
    """Build and load a task; a missing file or a task that cannot load is one line of bad input, before any run."""
    try:
        return registry.get("task", name).create(**params).load()
    except UsageError:
        raise
    except FileNotFoundError as exc:
        raise DataError(f"task {name!r}: data file {exc.filename or exc} not found; "
                        "check the task's parameters") from None
    except OSError as exc:
        raise DataError(f"task {name!r}: cannot read {exc.filename or 'its data'}: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - any failure of a plugin's loader, reported in one line
        raise DataError(
            f"task {name!r} failed to load its data: {type(exc).__name__}: {exc}; fix it or leave it out of --tasks"
        ) from None


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
                f"encoder {component.name!r} accepts {', '.join(kinds)} modalities, "
                f"but {modality.name!r} is {modality.kind!r}"
            )
        params = resolved_params(registry, "encoder", component.name, config.overrides)
        chosen[modality.name] = EncoderChoice(component.name, params)
    return chosen
