"""Train one run and evaluate it: the same loop for every objective."""

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

from pmrl_bench.components import Split, TaskData
from pmrl_bench.evaluation.classification import probe_accuracies
from pmrl_bench.evaluation.multimodal import multimodal_retrieval
from pmrl_bench.evaluation.native import native_ranks
from pmrl_bench.evaluation.retrieval import pairwise_retrieval, recall_metrics
from pmrl_bench.evaluation.per_query import PER_QUERY_KEY, encode_ranks, per_query_ranks
from pmrl_bench.registry import Registry
from pmrl_bench.runner.device import BatchSource, autocast_dtype, stage
from pmrl_bench.runner.distributed import (
    SINGLE_PROCESS, DistributedContext, data_parallel, gather_embeddings, local_slice,
)
from pmrl_bench.runner.monitor import StepRecord, TrainContext, TrainingMonitor
from pmrl_bench.runner.spec import RunSpec

PROBE_SIZE = 256


@dataclass
class RunOutcome:
    status: str  # "ok" or "diverged"; exceptions become "failed" in the sweep
    metrics: dict[str, Any] = field(default_factory=dict)
    stability: dict[str, Any] = field(default_factory=dict)
    diverged_step: int | None = None
    error: str | None = None


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


def to_tensors(split: Split, names: Sequence[str], device: torch.device) -> dict[str, torch.Tensor]:
    return {m: stage(split.inputs[m], device) for m in names}


class EmbedAndScore(nn.Module):
    """One training forward: encoders (under autocast when asked), float32 unit embeddings, all-gather, objective.

    Encoders and objective form one module so that DDP wraps both and averages every gradient.
    """

    def __init__(self, encoders: nn.ModuleDict, objective: nn.Module, amp_dtype: torch.dtype | None,
                 world: DistributedContext = SINGLE_PROCESS) -> None:
        super().__init__()
        self.encoders, self.objective = encoders, objective
        self.amp_dtype, self.world = amp_dtype, world

    def forward(self, batch: Mapping[str, torch.Tensor]) -> Any:
        device_type = next(iter(batch.values())).device.type
        with torch.autocast(device_type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            raw = {m: self.encoders[m](x) for m, x in batch.items()}
        # Normalise and score in float32: objectives' SVDs and volumes have no half-precision kernels.
        local = {m: F.normalize(z.float(), dim=-1) for m, z in raw.items()}
        return self.objective(gather_embeddings(local, self.world))


@torch.no_grad()
def embed(encoders: nn.ModuleDict, inputs: Mapping[str, torch.Tensor], batch_size: int = 1024) -> dict[str, torch.Tensor]:
    """Unit-norm embeddings of every instance, per modality, in eval mode."""
    was_training = encoders.training
    encoders.eval()
    out = {
        m: torch.cat([F.normalize(encoders[m](x[i : i + batch_size]).float(), dim=-1) for i in range(0, len(x), batch_size)])
        for m, x in inputs.items()
    }
    encoders.train(was_training)
    return out


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


def evaluate(
    encoders: nn.ModuleDict, objective: nn.Module, data: TaskData, device: torch.device, seed: int
) -> dict[str, Any]:
    names = [m.name for m in data.modalities]
    test = embed(encoders, to_tensors(data.test, names, device))
    metrics: dict[str, Any] = {"retrieval": pairwise_retrieval(test)}
    fused = multimodal_retrieval(test)  # one modality vs the fusion of the others (3+ modalities)
    if fused:
        metrics["retrieval_multimodal"] = fused
    # Per-query ranks let leaderboards bootstrap confidence intervals over test queries.
    metrics[PER_QUERY_KEY] = {"retrieval": per_query_ranks(test)}
    native = native_ranks(objective, test)  # the objective's own score (e.g. -volume), when it has one
    if native is not None:
        metrics["retrieval_native"] = {direction: recall_metrics(r) for direction, r in native.items()}
        metrics[PER_QUERY_KEY]["retrieval_native"] = {direction: encode_ranks(r) for direction, r in native.items()}
    if data.train.labels is not None and data.test.labels is not None:
        train = embed(encoders, to_tensors(data.train, names, device))
        metrics["classification"] = probe_accuracies(train, data.train.labels, test, data.test.labels, seed)
    return metrics


def train_and_evaluate(
    spec: RunSpec,
    data: TaskData,
    registry: Registry,
    device: torch.device,
    monitors: Sequence[TrainingMonitor] = (),
    probe_every: int = 25,
    progress: bool = True,
    precision: str = "auto",
    world: DistributedContext = SINGLE_PROCESS,
) -> RunOutcome:
    """Train the spec's encoders with its objective for ``budget.steps`` steps, then evaluate on the test split.

    Host syncs: none inside a step. Loss, terms and gradient norm stay on the device and reach the monitors (as
    StepRecords, in order) once per ``probe_every`` steps; a non-finite step's update is skipped on the device
    (fused AdamW's ``found_inf``), and the run stops as ``diverged`` at that flush, naming the first bad step.
    Under DDP (``world``) every rank trains its slice of each global batch and only rank 0 monitors and evaluates.
    """
    budget = spec.budget
    names = [m.name for m in data.modalities]
    seed_everything(spec.seed)
    encoders = build_encoders(spec, data, registry).to(device)
    objective = registry.get("objective", spec.objective).create(**spec.objective_params).to(device)
    params = [p for group in parameter_groups(encoders, objective, budget.weight_decay) for p in group["params"]]
    optimiser = torch.optim.AdamW(
        parameter_groups(encoders, objective, budget.weight_decay), lr=budget.lr, betas=(0.9, 0.98),
        fused=True,  # one kernel, and it skips the update on device when found_inf is set: no host sync
    )
    amp_dtype = autocast_dtype(device, precision)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16)  # bf16 needs no scaling
    model = data_parallel(EmbedAndScore(encoders, objective, amp_dtype, world), world, device)
    if not world.is_main:
        monitors = ()
    warmup_steps = max(1, int(budget.warmup * budget.steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: min(1.0, (s + 1) / warmup_steps))
    after_step = getattr(objective, "after_optimizer_step", None)

    source = BatchSource({m: data.train.inputs[m] for m in names}, device)
    probe = {m: x[:PROBE_SIZE] for m, x in to_tensors(data.test, names, device).items()}
    generator = torch.Generator().manual_seed(spec.seed)
    context = TrainContext(budget.steps, names, objective)
    for monitor in monitors:
        monitor.on_train_start(context)

    def probe_all(step: int) -> None:
        if monitors:
            embeddings = embed(encoders, probe)
            for monitor in monitors:
                monitor.on_probe(step, embeddings)

    pending: list[tuple[int, tuple[str, ...], torch.Tensor]] = []  # steps not yet seen by the host
    amp_skipped = 0

    def flush() -> int | None:
        """Hand buffered steps to the monitors (one host sync); return the first non-finite step, if any."""
        nonlocal amp_skipped
        if not pending:
            return None
        values = torch.stack([v for _, _, v in pending]).cpu().tolist()
        done = [(step, keys) for step, keys, _ in pending]
        pending.clear()
        for (step, keys), (loss, grad_norm, *terms) in zip(done, values):
            if scaler.is_enabled() and math.isfinite(loss) and not math.isfinite(grad_norm):
                amp_skipped += 1  # fp16 overflow: the GradScaler skipped this update and lowered its scale
                continue
            finite = math.isfinite(loss) and math.isfinite(grad_norm)
            record = StepRecord(step=step, loss=loss, terms=dict(zip(keys, terms)), grad_norm=grad_norm,
                                clipped=finite and grad_norm > budget.grad_clip, finite=finite)
            for monitor in monitors:
                monitor.on_step(record)
            if not finite:  # divergence is a result, not a crash
                return step
        return None

    encoders.train()
    objective.train()
    diverged_step = None
    probe_all(0)
    steps = tqdm(
        batches(len(data.train), budget.batch_size, budget.steps, generator),
        total=budget.steps, desc=spec.run_id, leave=False, disable=not progress or not world.is_main or None,
    )
    for step, index in enumerate(steps, start=1):
        output = model(source.batch(local_slice(index, world)))
        optimiser.zero_grad(set_to_none=True)
        scaler.scale(output.loss).backward()
        scaler.unscale_(optimiser)  # a no-op unless fp16
        grad_norm = nn.utils.clip_grad_norm_(params, budget.grad_clip)  # a device tensor; NaN/inf propagate
        if scaler.is_enabled():
            scaler.step(optimiser)
            scaler.update()
        else:
            optimiser.found_inf = (~(torch.isfinite(output.loss) & torch.isfinite(grad_norm))).float()
            optimiser.step()
        scheduler.step()
        if callable(after_step):
            after_step()
        terms = {k: v.detach().float().reshape(()) for k, v in output.terms.items()}
        pending.append((step, tuple(terms), torch.stack([output.loss.detach().float(), grad_norm.float(), *terms.values()])))
        if step % probe_every == 0 or step == budget.steps:
            diverged_step = flush()
            if diverged_step is not None:
                break
            if step != budget.steps:
                probe_all(step)

    stability = {}
    if diverged_step is None:
        probe_all(budget.steps)
    for monitor in monitors:
        stability[monitor.name] = monitor.summary()
    if scaler.is_enabled():
        stability["amp"] = {"dtype": "float16", "skipped_steps": amp_skipped}
    if diverged_step is not None:
        return RunOutcome("diverged", stability=stability, diverged_step=diverged_step,
                          error=f"non-finite loss or gradient at step {diverged_step}")
    if not world.is_main:  # rank 0 evaluates and writes; the other ranks only helped train
        return RunOutcome("ok", stability=stability)
    return RunOutcome("ok", evaluate(encoders, objective, data, device, spec.seed), stability)
