"""Train one run and evaluate it: the same loop for every objective.

A run starts from the encoders its protocol hands it (random weights, an init stage's or the user's checkpoint),
trains them with its objective for the budget's steps, keeps the last state or the best one on the validation
split (``--select``), and evaluates on the test split both the state it kept and the state it started from.
Training, selection and the monitors see the train and validation splits only.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from pmrl_bench.components import TaskData
from pmrl_bench.console import progress_label
from pmrl_bench.evaluation.embedding import embed, split_tensors
from pmrl_bench.evaluation.suite import evaluate, evaluate_native, evaluate_with_robustness
from pmrl_bench.registry import Registry
from pmrl_bench.runner.cost import CostMeter
from pmrl_bench.device import BatchSource, autocast_dtype
from pmrl_bench.runner.distributed import (
    SINGLE_PROCESS, DistributedContext, data_parallel, gather_embeddings, local_slice,
)
from pmrl_bench.runner.monitor import StepRecord, TrainContext, TrainingMonitor
from pmrl_bench.runner.spec import DEFAULT_SELECTION_METRIC, RunSpec
from pmrl_bench.runner.start_state import StartEvaluations
from pmrl_bench.splits import with_validation
from pmrl_bench.evaluation.retrieval import mean_r1

PROBE_SIZE = 256
State = dict[str, torch.Tensor]


@dataclass
class RunOutcome:
    status: str  # "ok" or "diverged"; exceptions become "failed" in the sweep
    metrics: dict[str, Any] = field(default_factory=dict)
    stability: dict[str, Any] = field(default_factory=dict)
    diverged_step: int | None = None
    error: str | None = None
    metrics_at_init: dict[str, Any] | None = None
    selection: dict[str, Any] | None = None  # {"rule", "metric", "step", "value"}
    robustness: dict[str, Any] = field(default_factory=dict)  # evaluation.robustness views of the final state
    cost: dict[str, Any] = field(default_factory=dict)  # runner.cost: parameters, ms per step, peak memory


@dataclass
class Trained:
    """What training hands evaluation: the modules, the states to evaluate, and what the monitors saw."""

    encoders: nn.ModuleDict
    objective: nn.Module
    status: str
    stability: dict[str, Any]
    diverged_step: int | None = None
    initial: tuple[State, State] | None = None  # (encoders, objective) before the first step
    selected: tuple[State, State] | None = None  # the best state on validation (--select best)
    selection: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_encoders(spec: RunSpec, data: TaskData, registry: Registry) -> nn.ModuleDict:
    return nn.ModuleDict(
        {
            m.name: registry.get("encoder", spec.encoders[m.name].name).create(
                modality=m, dim=spec.budget.dim, **spec.encoders[m.name].params
            )
            for m in data.modalities
        }
    )


def parameter_groups(encoders: nn.Module, objective: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay encoder weight matrices only; biases, norms and objective state (temperatures) are not decayed."""
    decay = [p for p in encoders.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in encoders.parameters() if p.requires_grad and p.ndim < 2]
    no_decay += [p for p in objective.parameters() if p.requires_grad]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def snapshot(module: nn.Module) -> State:
    """A copy of a module's state on its own device (later training does not change it)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class EmbedAndScore(nn.Module):
    """One training forward: encoders (under autocast when asked), float32 unit embeddings, all-gather, objective.

    Encoders and objective form one module so that DDP wraps both and averages every gradient.
    """

    def __init__(self, encoders: nn.ModuleDict, objective: nn.Module, amp_dtype: torch.dtype | None,
                 world: DistributedContext = SINGLE_PROCESS, compiled: bool = False) -> None:
        super().__init__()
        self.encoders, self.objective = encoders, objective
        self.amp_dtype, self.world = amp_dtype, world
        # A plain dict, not submodules: the compiled wrappers share the encoders' parameters, which must stay
        # registered once. Evaluation calls the encoders themselves (other batch sizes, eval mode).
        self.train_forward = {m: compile_encoder(e) if compiled else e for m, e in encoders.items()}

    def forward(self, batch: Mapping[str, torch.Tensor]) -> Any:
        device_type = next(iter(batch.values())).device.type
        with torch.autocast(device_type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            raw = {m: self.train_forward[m](x) for m, x in batch.items()}
        # Normalise and score in float32: objectives' SVDs and volumes have no half-precision kernels.
        local = {m: F.normalize(z.float(), dim=-1) for m, z in raw.items()}
        return self.objective(gather_embeddings(local, self.world))


def compile_encoder(encoder: nn.Module) -> Any:
    """``torch.compile`` of one encoder's training forward (and, through AOT autograd, its backward).

    Small encoders at small batches are launch-bound on a GPU: fused kernels, and on CUDA CUDA graphs
    (``reduce-overhead``) replaying the whole forward and backward, remove most of the per-step launches.
    Objectives stay eager: plugin code, and spectral losses whose ``eigh``/SVD read results back on the host,
    which a CUDA graph cannot hold. Batches have one fixed shape (the last partial batch is dropped), so it
    compiles once per encoder.
    """
    cuda = any(p.is_cuda for p in encoder.parameters())
    return torch.compile(encoder, mode="reduce-overhead" if cuda else "default", dynamic=False)


def batches(n: int, batch_size: int, steps: int, generator: torch.Generator):
    """Indices of ``steps`` batches: seeded permutations, one epoch after another, dropping the last partial batch."""
    produced = 0
    while produced < steps:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            if produced == steps:
                return
            yield order[start : start + batch_size]
            produced += 1


class Selector:
    """``--select best``: the encoder state with the highest validation mean R@1 at the probe cadence."""

    def __init__(self, encoders: nn.ModuleDict, objective: nn.Module, validation: Mapping[str, torch.Tensor]) -> None:
        self.encoders, self.objective, self.validation = encoders, objective, validation
        self.best: tuple[State, State] | None = None
        self.step: int | None = None
        self.value = -math.inf

    def observe(self, step: int) -> None:
        value = mean_r1(embed(self.encoders, self.validation))
        if math.isfinite(value) and value > self.value:  # the earliest step wins a tie
            self.best, self.step, self.value = (snapshot(self.encoders), snapshot(self.objective)), step, value

    def record(self, steps: int) -> tuple[tuple[State, State] | None, dict[str, Any]]:
        """The kept state (None: the last) and the result file's ``selection`` block."""
        if self.best is None:
            return None, {"rule": "last", "step": steps}
        return self.best, {"rule": "best", "metric": f"validation {DEFAULT_SELECTION_METRIC}", "step": self.step,
                           "value": round(self.value, 6)}


@dataclass(frozen=True)
class TrainOptions:
    """How a run trains, beside what its spec fixes: where, watched by whom, how often, from which weights."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    monitors: Sequence[TrainingMonitor] = ()
    probe_every: int = 25  # steps between flushes: monitors, divergence check, selection, cost intervals
    progress: bool = True
    precision: str = "auto"  # the encoders' autocast (pmrl_bench.device.autocast_dtype)
    world: DistributedContext = SINGLE_PROCESS
    init_state: State | None = None  # the encoders' starting weights (an init stage's or a checkpoint's)
    compiled: bool = False  # torch.compile each encoder's training forward


def feed_monitors(steps: Sequence[tuple[int, tuple[str, ...]]], values: Sequence[Sequence[float]],
                  monitors: Sequence[TrainingMonitor], grad_clip: float, amp_scaled: bool) -> tuple[int | None, int]:
    """Hand buffered steps (``(step, term names)`` and ``[loss, grad norm, *terms]`` on the host) to the monitors in
    order, up to the first non-finite one: ``(that step or None, fp16 steps the GradScaler skipped)``."""
    skipped = 0
    for (step, keys), (loss, grad_norm, *terms) in zip(steps, values):
        if amp_scaled and math.isfinite(loss) and not math.isfinite(grad_norm):
            skipped += 1  # fp16 overflow: the GradScaler skipped this update and lowered its scale
            continue
        finite = math.isfinite(loss) and math.isfinite(grad_norm)
        record = StepRecord(step=step, loss=loss, terms=dict(zip(keys, terms)), grad_norm=grad_norm,
                            clipped=finite and grad_norm > grad_clip, finite=finite)
        for monitor in monitors:
            monitor.on_step(record)
        if not finite:  # divergence is a result, not a crash
            return step, skipped
    return None, skipped


def step_unless_nonfinite(optimiser: torch.optim.Optimizer, scaler: torch.amp.GradScaler, loss: torch.Tensor,
                          grad_norm: torch.Tensor) -> None:
    """One optimiser update, skipped on the device, without a host sync, when the loss or gradient is not finite.

    Under fp16 the GradScaler skips and lowers its scale itself. Otherwise the optimiser gets the flag the GradScaler
    would hand it, ``found_inf``: fused AdamW reads it in its kernel and leaves parameters and moments as they were
    when it is 1 (tested in tests/runner/test_training_loop.py, so a torch that changed it would be noticed).
    """
    if scaler.is_enabled():
        scaler.step(optimiser)
        scaler.update()
        return
    optimiser.found_inf = (~(torch.isfinite(loss) & torch.isfinite(grad_norm))).float()  # type: ignore[attr-defined]
    optimiser.step()


class TrainingLoop:
    """One run's training, in three parts: set-up (``__init__``), a step, and a flush of the buffered steps.

    Host syncs: none inside a step. Loss, terms and gradient norm stay on the device and reach the monitors (as
    StepRecords, in order) once per ``probe_every`` steps; a non-finite step's update is skipped on the device
    (:func:`step_unless_nonfinite`), and the run stops as ``diverged`` at that flush, naming the first bad step.
    Under DDP (``options.world``) every rank trains its slice of each global batch and only rank 0 monitors and
    selects.
    """

    def __init__(self, spec: RunSpec, data: TaskData, registry: Registry, options: TrainOptions,
                 keep_initial: bool = True) -> None:
        self.spec, self.budget, self.options = spec, spec.budget, options
        self.data = data = with_validation(data)
        device, world = options.device, options.world
        names = [m.name for m in data.modalities]
        seed_everything(spec.seed)
        encoders = build_encoders(spec, data, registry)
        if options.init_state is not None:
            encoders.load_state_dict(options.init_state)
        self.encoders = encoders.to(device)
        self.objective = registry.get("objective", spec.objective).create(**spec.objective_params).to(device)
        keep = keep_initial and world.is_main
        self.initial = (snapshot(self.encoders), snapshot(self.objective)) if keep else None
        self._build_optimiser(device, options.precision)
        self.model = data_parallel(EmbedAndScore(self.encoders, self.objective, self.amp_dtype, world,
                                                 options.compiled), world, device)
        self.monitors = options.monitors if world.is_main else ()
        self.after_step = getattr(self.objective, "after_optimizer_step", None)
        self.source = BatchSource({m: data.train.inputs[m] for m in names}, device)
        assert data.validation is not None
        validation = split_tensors(data.validation, names, device) if world.is_main else {}
        self.probe_batch = {m: x[:PROBE_SIZE] for m, x in validation.items()}  # validation, never test
        self.selector = (Selector(self.encoders, self.objective, validation)
                         if spec.selection == "best" and world.is_main else None)
        self.generator = torch.Generator().manual_seed(spec.seed)
        self.pending: list[tuple[int, tuple[str, ...], torch.Tensor]] = []  # steps not yet seen by the host
        self.amp_skipped = 0
        self.meter = CostMeter(self.encoders, self.objective, device)
        context = TrainContext(self.budget.steps, names, self.objective)
        for monitor in self.monitors:
            monitor.on_train_start(context)

    def _build_optimiser(self, device: torch.device, precision: str) -> None:
        groups = parameter_groups(self.encoders, self.objective, self.budget.weight_decay)
        self.params = [p for group in groups for p in group["params"]]
        self.optimiser = torch.optim.AdamW(
            groups, lr=self.budget.lr, betas=(0.9, 0.98),
            fused=True,  # one kernel, and it skips the update on device when found_inf is set: no host sync
        )
        self.amp_dtype = autocast_dtype(device, precision)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype is torch.float16)  # bf16: no scaling
        warmup_steps = max(1, int(self.budget.warmup * self.budget.steps))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimiser,
                                                           lambda s: min(1.0, (s + 1) / warmup_steps))

    def probe(self, step: int) -> None:
        """Hand the monitors the probe batch's embeddings."""
        if self.monitors:
            embeddings = embed(self.encoders, self.probe_batch)
            for monitor in self.monitors:
                monitor.on_probe(step, embeddings)

    def step(self, step: int, index: torch.Tensor) -> None:
        """One optimiser step on the batch ``index``; its loss, gradient norm and terms stay on the device."""
        output = self.model(self.source.batch(local_slice(index, self.options.world)))
        self.optimiser.zero_grad(set_to_none=True)
        self.scaler.scale(output.loss).backward()
        self.scaler.unscale_(self.optimiser)  # a no-op unless fp16
        grad_norm = nn.utils.clip_grad_norm_(self.params, self.budget.grad_clip)  # a device tensor; NaN/inf propagate
        step_unless_nonfinite(self.optimiser, self.scaler, output.loss, grad_norm)
        self.scheduler.step()
        if callable(self.after_step):
            self.after_step()
        terms = {k: v.detach().float().reshape(()) for k, v in output.terms.items()}
        values = torch.stack([output.loss.detach().float(), grad_norm.float(), *terms.values()])
        self.pending.append((step, tuple(terms), values))

    def flush(self) -> int | None:
        """Hand buffered steps to the monitors (one host sync); return the first non-finite step, if any."""
        if not self.pending:
            return None
        values = torch.stack([v for _, _, v in self.pending]).cpu().tolist()
        self.meter.end_interval(len(self.pending))  # right after the sync: the steps are done, monitoring is not
        done = [(step, keys) for step, keys, _ in self.pending]
        self.pending.clear()
        first_bad, skipped = feed_monitors(done, values, self.monitors, self.budget.grad_clip, self.scaler.is_enabled())
        self.amp_skipped += skipped
        return first_bad

    def run(self) -> Trained:
        """Every step of the budget, flushing at the probe cadence; stops at the first non-finite step."""
        steps, every = self.budget.steps, self.options.probe_every
        self.encoders.train()
        self.objective.train()
        diverged_step = None
        self.probe(0)
        indices = tqdm(batches(len(self.data.train), self.budget.batch_size, steps, self.generator), total=steps,
                       desc=progress_label(self.spec.run_id), leave=False,
                       disable=not self.options.progress or not self.options.world.is_main or None)
        self.meter.start_interval()
        for step, index in enumerate(indices, start=1):
            self.step(step, index)
            if step % every == 0 or step == steps:
                diverged_step = self.flush()
                if diverged_step is not None:
                    break
                if self.selector is not None:
                    self.selector.observe(step)
                if step != steps:
                    self.probe(step)
                self.meter.start_interval()
        if diverged_step is None:
            self.probe(steps)
        return self.trained(diverged_step)

    def trained(self, diverged_step: int | None) -> Trained:
        """What training hands evaluation: the modules, the kept state, the monitors' summaries and the cost."""
        stability = {}
        for monitor in self.monitors:
            summary = monitor.summary()
            if summary is not None:  # a monitor that only forwards (to reporters) stores nothing
                stability[monitor.name] = summary
        if self.scaler.is_enabled():
            stability["amp"] = {"dtype": "float16", "skipped_steps": self.amp_skipped}
        status = "ok" if diverged_step is None else "diverged"
        trained = Trained(self.encoders, self.objective, status, stability, diverged_step, initial=self.initial,
                          cost=self.meter.summary())
        if self.selector is not None:
            trained.selected, trained.selection = self.selector.record(self.budget.steps)
        else:
            trained.selection = {"rule": "last", "step": self.budget.steps}
        return trained


def train(spec: RunSpec, data: TaskData, registry: Registry, options: TrainOptions | None = None, *,
          keep_initial: bool = True) -> Trained:
    """Train the spec's encoders (from ``options.init_state`` when given) with its objective for ``budget.steps``
    steps (see :class:`TrainingLoop`). ``keep_initial``: keep a copy of the starting state, to evaluate it too."""
    return TrainingLoop(spec, data, registry, options or TrainOptions(), keep_initial).run()


def train_and_evaluate(spec: RunSpec, data: TaskData, registry: Registry, options: TrainOptions | None = None, *,
                       evaluate_on: str = "test", start_evaluations: StartEvaluations | None = None) -> RunOutcome:
    """Train (see :func:`train`), then evaluate on ``evaluate_on`` the state kept by the selection rule and the
    state the run started from (``metrics_at_init``). ``evaluate_on="validation"`` is what tuning uses."""
    options = options or TrainOptions()
    data = with_validation(data)
    trained = train(spec, data, registry, options, keep_initial=evaluate_on == "test")
    return outcome_of(trained, spec, data, options, evaluate_on, start_evaluations)


def outcome_of(trained: Trained, spec: RunSpec, data: TaskData, options: TrainOptions, evaluate_on: str = "test",
               start_evaluations: StartEvaluations | None = None) -> RunOutcome:
    """A trained run's outcome: ``diverged`` as it stopped, or ``ok`` with its evaluation on ``evaluate_on``."""
    if trained.status == "diverged":
        return RunOutcome("diverged", stability=trained.stability, diverged_step=trained.diverged_step,
                          error=f"non-finite loss or gradient at step {trained.diverged_step}", cost=trained.cost)
    if not options.world.is_main:  # rank 0 evaluates and writes; the other ranks only helped train
        return RunOutcome("ok", stability=trained.stability)
    metrics, robustness, at_init = evaluate_trained(trained, data, options.device, spec, evaluate_on,
                                                    start_evaluations)
    return RunOutcome("ok", metrics, trained.stability, metrics_at_init=at_init, selection=trained.selection,
                      robustness=robustness, cost=trained.cost)


def evaluate_trained(trained: Trained, data: TaskData, device: torch.device, spec: RunSpec, evaluate_on: str = "test",
                     start_evaluations: StartEvaluations | None = None,
                     ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """``(metrics, robustness, metrics_at_init)``: the state the selection rule kept, with every view and the
    robustness views, and the state the run started from, with retrieval and the fused probes (what the step-0
    row and the change from step 0 need, at a fraction of the cost). The modules end in the kept state.

    ``start_evaluations``: the sweep's memo of starting states (``runner.start_state``), which the runs of a seed
    share; without it the starting state is evaluated here."""
    if trained.selected is not None:
        trained.encoders.load_state_dict(trained.selected[0])
        trained.objective.load_state_dict(trained.selected[1])
    # The robustness views belong to a test result; a tuning trial (validation) keeps only its metric.
    metrics, robustness = evaluate_with_robustness(trained.encoders, trained.objective, data, device, spec.seed,
                                                   evaluate_on, spec.probe, robustness=evaluate_on == "test")
    at_init = None
    if trained.initial is not None:  # the state the run was handed, scored like the final one
        kept = trained.selected or (snapshot(trained.encoders), snapshot(trained.objective))
        trained.encoders.load_state_dict(trained.initial[0])
        trained.objective.load_state_dict(trained.initial[1])
        at_init = _evaluate_start(trained, data, device, spec, evaluate_on, start_evaluations)
        trained.encoders.load_state_dict(kept[0])
        trained.objective.load_state_dict(kept[1])
    return metrics, robustness, at_init


def _evaluate_start(trained: Trained, data: TaskData, device: torch.device, spec: RunSpec, split: str,
                    start_evaluations: StartEvaluations | None) -> dict[str, Any]:
    """The loaded starting state's metrics: from the sweep's memo when there is one, plus the objective's own
    ``retrieval_native`` view, the only one that depends on the objective."""
    if start_evaluations is None:
        return evaluate(trained.encoders, trained.objective, data, device, spec.seed, split, spec.probe,
                        probe_views=("fused",))
    assert trained.initial is not None
    key = start_evaluations.key(spec, trained.initial[0], split, device)
    metrics = start_evaluations.metrics(key, lambda: evaluate(trained.encoders, None, data, device, spec.seed, split,
                                                              spec.probe, probe_views=("fused",)))
    return evaluate_native(metrics, trained.encoders, trained.objective, data, device, split)
