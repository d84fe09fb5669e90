"""Seeds trained as one model (``run --seed-batch``): the runs of one configuration that differ only in their seed
take each step together.

Each member is the run it replaces. It builds its encoders and objective from its own seed, starts from its own
state (random, its init stage or the checkpoint), draws its own batches, feeds its own monitors, keeps its own
best state (``--select best``) and stops alone when it diverges while the others go on. What the members share is
the arithmetic: their parameters are stacked along a new first dimension, one tensor per parameter, and one step
runs every member's forward under ``torch.func.vmap``, one backward, a gradient clip per member and one fused
AdamW update (elementwise, so each slice is updated exactly as its own optimiser would). Each member's modules
hold views of its slices, so probes, selection, evaluation and ``after_optimizer_step`` (temperature clamps)
read and write the member's own values. Results differ from sequential runs only by float reduction order.

Only components that declare ``supports_seed_batch`` (:func:`pmrl_bench.components.supports_seed_batch`) are
batched; anything else raises :class:`NotBatchable` with the reason, and the caller trains the seeds one after
another. On a GPU this divides the kernel launches of small runs by the number of seeds; on a CPU it saves the
per-operation overhead (``benchmarks/test_seed_batch_speed.py``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap
from tqdm.auto import tqdm

from pmrl_bench.components import TaskData, supports_seed_batch
from pmrl_bench.console import progress_label
from pmrl_bench.device import BatchSource, autocast_dtype
from pmrl_bench.evaluation.embedding import embed, split_tensors
from pmrl_bench.registry import Registry
from pmrl_bench.rounding import sig
from pmrl_bench.runner.cost import CostMeter
from pmrl_bench.runner.monitor import TrainContext, TrainingMonitor
from pmrl_bench.runner.spec import RunSpec
from pmrl_bench.runner.train import (
    PROBE_SIZE, EmbedAndScore, Selector, State, Trained, TrainOptions, batches, build_encoders, feed_monitors,
    seed_everything, snapshot,
)
from pmrl_bench.splits import with_validation


class NotBatchable(Exception):
    """These runs cannot train as one model; the message says why (one line)."""


@dataclass
class Member:
    """One run of the batch: its own modules (views of its slices), data order, monitors and selection."""

    spec: RunSpec
    encoders: nn.ModuleDict
    objective: nn.Module
    monitors: Sequence[TrainingMonitor]
    generator: torch.Generator
    initial: tuple[State, State] | None
    selector: Selector | None = None
    after_step: Any = None
    diverged_step: int | None = None
    cost: dict[str, Any] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.diverged_step is None


def check_batchable(specs: Sequence[RunSpec], options: Sequence[TrainOptions]) -> None:
    """Raise :class:`NotBatchable` when the runs or the way they train rule out one model (components are checked
    once built)."""
    if len({spec.config_id for spec in specs}) != 1:
        raise NotBatchable("the runs differ in more than their seed")
    first = options[0]
    if first.world.enabled:
        raise NotBatchable("distributed training (torchrun) splits each batch across processes instead")
    if first.compiled:
        raise NotBatchable("--compile compiles each run's encoders on their own")
    if autocast_dtype(first.device, first.precision) is torch.float16:
        raise NotBatchable("fp16 autocast scales each run's loss with a GradScaler of its own")


def batchable_reason(spec: RunSpec, data: TaskData, registry: Registry, options: TrainOptions) -> str | None:
    """Why the seeds of ``spec``'s configuration cannot train as one model, or None: the way they train, and the
    declaration of each component, built once for ``spec`` (cheap beside training)."""
    try:
        check_batchable([spec], [options])
    except NotBatchable as exc:
        return str(exc)
    for modality in data.modalities:
        choice = spec.encoders[modality.name]
        encoder = registry.get("encoder", choice.name).create(modality=modality, dim=spec.budget.dim, **choice.params)
        if not supports_seed_batch(encoder):
            return f"encoder {choice.name!r} (modality {modality.name!r}) does not declare supports_seed_batch"
    if not supports_seed_batch(registry.get("objective", spec.objective).create(**spec.objective_params)):
        return f"objective {spec.objective!r} does not declare supports_seed_batch"
    return None


def clip_per_member(params: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``clip_grad_norm_`` of every member's slice of the stacked gradients; each member's total norm, (S,)."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch.stack([torch.linalg.vector_norm(g.reshape(len(g), -1), dim=1) for g in grads], dim=1)
    total = torch.linalg.vector_norm(norms, dim=1)
    coefficient = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for grad in grads:
        grad.mul_(coefficient.view(-1, *([1] * (grad.ndim - 1))).to(grad.dtype))
    return total


class SeedBatchLoop:
    """The runs ``specs`` (one configuration, several seeds) trained as one model; :meth:`run` gives each run's
    :class:`~pmrl_bench.runner.train.Trained`, in order. ``options[i]`` is run ``i``'s (its monitors and starting
    state); where, how and how often come from ``options[0]``."""

    def __init__(self, specs: Sequence[RunSpec], data: TaskData, registry: Registry,
                 options: Sequence[TrainOptions], keep_initial: bool = True) -> None:
        check_batchable(specs, options)
        self.specs, self.options = list(specs), options[0]
        self.budget = specs[0].budget
        self.data = data = with_validation(data)
        device = self.options.device
        self.amp_dtype = autocast_dtype(device, self.options.precision)
        names = [m.name for m in data.modalities]
        self.members = [self._member(spec, registry, opts, keep_initial) for spec, opts in zip(specs, options)]
        models = [EmbedAndScore(m.encoders, m.objective, self.amp_dtype) for m in self.members]
        self.params, self.buffers = _stack(models)
        self._forward = vmap(self._member_forward(models[0]), randomness="error")
        self._build_optimiser(models[0])
        self.source = BatchSource({m: data.train.inputs[m] for m in names}, device)
        assert data.validation is not None
        validation = split_tensors(data.validation, names, device)
        self.probe_batch = {m: x[:PROBE_SIZE] for m, x in validation.items()}
        for member in self.members:
            if member.spec.selection == "best":
                member.selector = Selector(member.encoders, member.objective, validation)
            context = TrainContext(self.budget.steps, names, member.objective)
            for monitor in member.monitors:
                monitor.on_train_start(context)
        self.pending: list[tuple[int, tuple[str, ...], torch.Tensor]] = []
        self.meter = CostMeter(self.members[0].encoders, self.members[0].objective, device)

    def _member(self, spec: RunSpec, registry: Registry, options: TrainOptions, keep_initial: bool) -> Member:
        """Build one run's modules exactly as its own training would (seed, construction order, starting state)."""
        seed_everything(spec.seed)
        encoders = build_encoders(spec, self.data, registry)
        if options.init_state is not None:
            encoders.load_state_dict(options.init_state)
        encoders = encoders.to(self.options.device)
        objective = registry.get("objective", spec.objective).create(**spec.objective_params).to(self.options.device)
        for name, encoder in encoders.items():
            if not supports_seed_batch(encoder):
                raise NotBatchable(f"encoder {spec.encoders[name].name!r} (modality {name!r}) does not declare "
                                   "supports_seed_batch")
        if not supports_seed_batch(objective):
            raise NotBatchable(f"objective {spec.objective!r} does not declare supports_seed_batch")
        initial = (snapshot(encoders), snapshot(objective)) if keep_initial else None
        return Member(spec, encoders, objective, options.monitors, torch.Generator().manual_seed(spec.seed), initial,
                      after_step=getattr(objective, "after_optimizer_step", None))

    @staticmethod
    def _member_forward(model: nn.Module) -> Any:
        def forward(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                    batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            output = functional_call(model, (params, buffers), (batch,))
            return output.loss, dict(output.terms)

        return forward

    def _build_optimiser(self, model: nn.Module) -> None:
        """AdamW over the stacked tensors, grouped as a single run's (decay on encoder weight matrices only)."""
        decay, no_decay = [], []
        for name, member_param in model.named_parameters():
            if not member_param.requires_grad:
                continue
            is_matrix = name.startswith("encoders.") and member_param.ndim >= 2
            (decay if is_matrix else no_decay).append(self.params[name])
        self.trainable = decay + no_decay
        groups = [{"params": decay, "weight_decay": self.budget.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        self.optimiser = torch.optim.AdamW(groups, lr=self.budget.lr, betas=(0.9, 0.98), fused=True)
        warmup_steps = max(1, int(self.budget.warmup * self.budget.steps))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimiser,
                                                           lambda s: min(1.0, (s + 1) / warmup_steps))

    def probe(self, step: int) -> None:
        for member in self.members:
            if member.live and member.monitors:
                embeddings = embed(member.encoders, self.probe_batch)
                for monitor in member.monitors:
                    monitor.on_probe(step, embeddings)

    def step(self, step: int, index: torch.Tensor) -> None:
        """One step of every member on its own batch (``index``: (S, B)). A member whose loss or gradient is not
        finite only spoils its own slice; it is stopped at the next flush."""
        with warnings.catch_warnings():  # torch's note that an op lacks a batching rule: slower, same values
            warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet")
            loss, terms = self._forward(self.params, self.buffers, self.source.batch(index))
            self.optimiser.zero_grad(set_to_none=True)
            loss.sum().backward()  # each member's gradient is its own loss's: the members share no parameter
        grad_norm = clip_per_member(self.trainable, self.budget.grad_clip)
        self.optimiser.step()
        self.scheduler.step()
        for member in self.members:
            if callable(member.after_step):
                member.after_step()
        values = torch.stack([loss.detach().float(), grad_norm.float(),
                              *(t.detach().float().reshape(-1) for t in terms.values())], dim=1)
        self.pending.append((step, tuple(terms), values))

    def flush(self) -> None:
        """Hand each live member its buffered steps (one host sync); a member with a non-finite step stops."""
        if not self.pending:
            return
        values = torch.stack([v for _, _, v in self.pending]).cpu().tolist()  # [steps][members][values]
        self.meter.end_interval(len(self.pending))
        done = [(step, keys) for step, keys, _ in self.pending]
        self.pending.clear()
        for index, member in enumerate(self.members):
            if not member.live:
                continue
            first_bad, _ = feed_monitors(done, [row[index] for row in values], member.monitors,
                                         self.budget.grad_clip, False)
            if first_bad is not None:
                member.diverged_step, member.cost = first_bad, self._cost()

    def run(self) -> list[Trained]:
        steps, every = self.budget.steps, self.options.probe_every
        for member in self.members:
            member.encoders.train()
            member.objective.train()
        self.probe(0)
        show = self.options.progress or None
        desc = f"{self.specs[0].run_id} (+{len(self.specs) - 1} seeds)"
        indices = tqdm(self._batches(), total=steps, desc=progress_label(desc), leave=False, disable=not show)
        self.meter.start_interval()
        for step, index in enumerate(indices, start=1):
            self.step(step, index)
            if step % every == 0 or step == steps:
                self.flush()
                if not any(member.live for member in self.members):
                    break
                for member in self.members:
                    if member.live and member.selector is not None:
                        member.selector.observe(step)
                if step != steps:
                    self.probe(step)
                self.meter.start_interval()
        self.probe(steps)
        return [self._trained(member) for member in self.members]

    def _batches(self) -> Iterator[torch.Tensor]:
        """Every member's next batch of indices, stacked: (S, B)."""
        streams = [batches(len(self.data.train), self.budget.batch_size, self.budget.steps, member.generator)
                   for member in self.members]
        yield from (torch.stack(step) for step in zip(*streams))

    def _cost(self) -> dict[str, Any]:
        """The cost of one member: the batch's step time shared by its members (``seed_batch`` says how many)."""
        cost = self.meter.summary()
        if cost["ms_per_step"] is not None:
            cost["ms_per_step"] = sig(cost["ms_per_step"] / len(self.members))
        return {**cost, "seed_batch": len(self.members)}

    def _trained(self, member: Member) -> Trained:
        stability = {}
        for monitor in member.monitors:
            summary = monitor.summary()
            if summary is not None:
                stability[monitor.name] = summary
        status = "ok" if member.live else "diverged"
        trained = Trained(member.encoders, member.objective, status, stability, member.diverged_step,
                          initial=member.initial, cost=member.cost or self._cost())
        if member.selector is not None:
            trained.selected, trained.selection = member.selector.record(self.budget.steps)
        else:
            trained.selection = {"rule": "last", "step": self.budget.steps}
        return trained


def _stack(models: Sequence[nn.Module]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One tensor per parameter and buffer, the members' along a new first dimension; each member's own
    parameter and buffer then becomes a view of its slice, so the members read and write the stacked values."""
    stacked: list[dict[str, torch.Tensor]] = []
    for kind in ("named_parameters", "named_buffers"):
        per_member = [dict(getattr(model, kind)()) for model in models]
        out = {}
        for name, first in per_member[0].items():
            tensor = torch.stack([members[name].detach() for members in per_member])
            if kind == "named_parameters":
                tensor.requires_grad_(first.requires_grad)
            for index, members in enumerate(per_member):
                members[name].data = tensor.data[index]
            out[name] = tensor
        stacked.append(out)
    return stacked[0], stacked[1]
