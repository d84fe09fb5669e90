"""Plan a sweep: check every name, parameter, budget, protocol and task before the first step trains."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pmrl_bench.cards import fallback_card, task_card
from pmrl_bench.components import Modality, TaskData
from pmrl_bench.console import say, shorten
from pmrl_bench.errors import DataError, UnknownNameError, UsageError
from pmrl_bench.modality_counts import not_applicable_reason
from pmrl_bench.params import Overrides, coerce
from pmrl_bench.registry import Component, Registry
from pmrl_bench.runner.checks import check_task_data, warn_small_validation, warn_unseen_test_labels
from pmrl_bench.runner.fingerprint import data_fingerprint
from pmrl_bench.runner.footprint import check_fits_memory, parameter_count
from pmrl_bench.runner.shard import Shard, select_shard
from pmrl_bench.runner.spec import MAX_STEPS, SELECTION_RULES, Budget, EncoderChoice, InitStage, Protocol, RunSpec
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
    seed_batch: int | str = 1  # --seed-batch N|auto: seeds of a configuration trained as one model (runner.seed_batch)


@dataclass
class SweepPlan:
    specs: list[RunSpec]
    data: dict[str, TaskData]
    fingerprints: dict[str, str] = field(default_factory=dict)  # task -> data fingerprint
    splits: dict[str, dict[str, int]] = field(default_factory=dict)  # task -> split sizes, counted while planning
    # (task, objective) -> why the objective does not apply (its modality counts exclude the task's): those runs are
    # recorded as not applicable, never trained
    not_applicable: dict[tuple[str, str], str] = field(default_factory=dict)
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> its data card, as result files record it


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
    from pmrl_bench.runner.jobs import check_threads, parse_jobs, parse_seed_batch

    parse_jobs(str(config.jobs))
    parse_seed_batch(str(config.seed_batch))
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
    largest = 0  # parameters of the largest objective: a run holds its task's encoders and one objective
    for name in objective_names:
        params = resolved_params(registry, "objective", name, config.overrides, config.budget.dim)
        largest = max(largest, objective_size(registry, name, params, config.device))
        instance = build_objective_for_checks(registry, name, params)
        if instance is not None:
            objectives[name] = instance
        objective_params[name] = params
    init_stage = _init_stage(config, registry)
    init_objective = None
    if init_stage is not None:
        largest = max(largest, objective_size(registry, init_stage.objective, init_stage.objective_params,
                                              config.device))
        init_objective = build_objective_for_checks(registry, init_stage.objective, init_stage.objective_params)

    data, task_params, encoders, cards = _load_tasks(config, registry, task_names, largest)

    all_modalities = {m.name for d in data.values() for m in d.modalities}
    for modality in config.encoders:
        if modality not in all_modalities:
            raise UnknownNameError("modality in --encoder", modality, all_modalities)
    not_applicable = _applicability(registry, objective_names, objectives, data)
    if init_stage is not None:  # every objective of a task starts from the init stage: it must apply everywhere
        _check_init_fits(registry, init_stage.objective, init_objective, data)

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
                     {task: split_sizes(d) for task, d in data.items()}, not_applicable,
                     cards)


def _load_tasks(config: SweepConfig, registry: Registry, task_names: list[str], objective_parameters: int = 0,
                ) -> tuple[dict[str, TaskData], dict[str, dict[str, Any]], dict[str, dict[str, EncoderChoice]],
                           dict[str, dict[str, Any]]]:
    """Load and check every task, carve its validation split, state its data card and choose (and check) its
    encoders; their parameters with ``objective_parameters`` (the largest objective's) must fit in memory."""
    data: dict[str, TaskData] = {}
    task_params: dict[str, dict[str, Any]] = {}
    encoders: dict[str, dict[str, EncoderChoice]] = {}
    cards: dict[str, dict[str, Any]] = {}
    for name in task_names:
        task_params[name] = resolved_params(registry, "task", name, config.overrides)
        built, loaded = built_and_loaded(registry, name, task_params[name])
        check_task_data(name, loaded)  # before carving a validation split, so errors name the task's own rows
        data[name] = with_validation(loaded, DEFAULT_VAL_SIZE, seed=0)
        cards[name] = data_card(registry, name, built, loaded)
        if config.budget.batch_size > len(data[name].train):
            raise UsageError(
                f"--batch-size {config.budget.batch_size} exceeds the {len(data[name].train)} training instances "
                f"of task {name!r}"
            )
        encoders[name] = _choose_encoders(registry, data[name], config)
        parameters = objective_parameters
        for modality in data[name].modalities:  # range checks of encoder parameters run now, not in each run
            choice = encoders[name][modality.name]
            parameters += build_encoder_for_checks(registry, choice.name, modality, config.budget.dim,
                                                   choice.params) or 0
        check_fits_memory(f"a run of task {name!r} (its encoders and the largest objective)", parameters,
                          config.device, config.budget.dim)
        warn_small_test_split(name, len(loaded.test))
        warn_unseen_test_labels(name, data[name])
        warn_small_validation(name, len(data[name].validation or []), config.selection)
    return data, task_params, encoders, cards


def warn_small_test_split(task: str, n_test: int) -> None:
    if n_test < SMALL_TEST_SPLIT:
        say(f"warning: task {task!r} has {n_test} test instances: chance R@1 is {1 / n_test:.1%} and "
            f"chance R@10 {min(1.0, 10 / n_test):.0%}; retrieval metrics need at least {SMALL_TEST_SPLIT} to say much")


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
                             params: dict[str, Any]) -> int | None:
    """Build an encoder once while planning, so a parameter it rejects (``hidden=0``, ``dropout=2``) is bad input
    before training; a plugin bug is left to its runs, which are recorded as failed (as for objectives). It is built
    on the meta device, which allocates nothing (a size too large for memory is refused by the caller, not
    allocated here); returns its parameter count, or None when that is unknown."""
    component = registry.get("encoder", name)
    try:
        count = parameter_count(lambda: component.create(modality=modality, dim=dim, **params))
        if count is None:  # it cannot be built on the meta device: build it for real, its checks must run
            component.create(modality=modality, dim=dim, **params)
        return count
    except UsageError as exc:
        raise UsageError(f"{exc} (modality {modality.name!r})") from None
    except Exception:  # noqa: BLE001
        return None


def objective_size(registry: Registry, name: str, params: dict[str, Any], device: str) -> int:
    """The objective's parameters, counted on the meta device and refused when training cannot hold even them,
    before the real build (:func:`build_objective_for_checks`) would allocate them."""
    count = parameter_count(lambda: registry.get("objective", name).create(**params))
    if count:
        check_fits_memory(f"objective {name!r}", count, device)
    return count or 0


def parse_init(text: str) -> tuple[str, int]:
    """``"infonce:300"`` -> ``("infonce", 300)``."""
    match = _INIT.match(text)
    if not match or not 1 <= int(match[2]) <= MAX_STEPS:
        raise UsageError(f"--init must be OBJECTIVE:STEPS with STEPS between 1 and {MAX_STEPS} (e.g. infonce:300), "
                         f"got {shorten(repr(text))}")
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

    state, _ = checkpoints.read(config.init_checkpoint)  # non-finite weights are refused here
    layout = checkpoints.encoder_layout(registry, data, encoders, config.budget.dim)
    checkpoints.check_fits(state, {k: shape for k, (shape, _) in layout.items()}, config.init_checkpoint, task,
                           dtypes={k: dtype for k, (_, dtype) in layout.items()})
    return Protocol("checkpoint", checkpoint_sha256=checkpoints.tensors_sha256(state),
                    checkpoint_path=str(config.init_checkpoint))


def _applicability(registry: Registry, names: list[str], built: dict[str, Any],
                   data: dict[str, TaskData]) -> dict[tuple[str, str], str]:
    """``{(task, objective): why}`` for every pair whose task has a number of modalities the objective does not
    accept, each announced in one line; every other pair gets the objective's own ``check_modalities``, so bad input
    (an anchor the task does not have) still fails before training."""
    skipped: dict[tuple[str, str], str] = {}
    for name in names:
        component, instance = registry.get("objective", name), built.get(name)
        for task, task_data in data.items():
            modalities = [m.name for m in task_data.modalities]
            reason = not_applicable_reason(component, instance, modalities)
            if reason is None:
                _check_objective_fits(name, instance, task, modalities)
                continue
            skipped[(task, name)] = reason
            say(f"objective {name!r} is not applicable to task {task!r}, so it is not trained there: {reason}")
    return skipped


def _check_init_fits(registry: Registry, name: str, instance: Any, data: dict[str, TaskData]) -> None:
    for task, task_data in data.items():
        modalities = [m.name for m in task_data.modalities]
        reason = not_applicable_reason(registry.get("objective", name), instance, modalities)
        if reason is not None:
            raise UsageError(f"--init objective {name!r} cannot start task {task!r}: {reason}; "
                             "warm-start with an objective every task accepts, e.g. infonce")
        _check_objective_fits(f"{name} (--init)", instance, task, modalities)


def _check_objective_fits(name: str, objective: Any, task: str, modalities: list[str]) -> None:
    """Call the objective's optional ``check_modalities(names)``: bad input fails before training."""
    check = getattr(objective, "check_modalities", None)
    if not callable(check):
        return
    try:
        check(modalities)
    except (ValueError, LookupError) as exc:
        raise UsageError(f"objective {name!r} cannot run on task {task!r}: {exc}") from exc


def data_card(registry: Registry, name: str, task: Any, data: TaskData) -> dict[str, Any]:
    """The card of ``task`` (built as ``name``) with the shape facts of the data the runs train on, as JSON; a task
    whose ``card()`` fails gets its fallback card (what ``list tasks`` shows too), never a stopped sweep."""
    component = registry.get("task", name)
    try:
        card = task_card(task, name, component.description)
    except (Exception, SystemExit):  # noqa: BLE001 - a plugin's card is a description, not a reason to stop
        card = fallback_card(name, component.description)
    return card.with_data(data).as_json()


def load_task(registry: Registry, name: str, params: dict[str, Any]) -> TaskData:
    """Build and load a task; a missing file or a task that cannot load is one line of bad input, before any run."""
    return built_and_loaded(registry, name, params)[1]


def built_and_loaded(registry: Registry, name: str, params: dict[str, Any]) -> tuple[Any, TaskData]:
    """``(task, its data)``, as :func:`load_task` loads it; the task object then states its card without reading
    the data again."""
    try:
        task = registry.get("task", name).create(**params)
        return task, task.load()
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
