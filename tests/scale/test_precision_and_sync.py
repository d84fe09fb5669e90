"""The GPU-ready training step, exercised on the CPU: autocast for encoders only, float32 objectives,
GradScaler for fp16, no per-step host sync, and divergence found at the deferred flush."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pmrl_bench.components import ObjectiveOutput
from pmrl_bench.errors import UsageError
from pmrl_bench.device import autocast_dtype, describe
from pmrl_bench.runner.monitor import TrainingMonitor
from pmrl_bench.runner.train import EmbedAndScore, TrainOptions, train, train_and_evaluate

from scale_helpers import tiny_plan


class Recorder(TrainingMonitor):
    name = "recorder"

    def __init__(self) -> None:
        self.records = []
        self.probes = []

    def on_step(self, record) -> None:
        self.records.append(record)

    def on_probe(self, step, embeddings) -> None:
        self.probes.append((step, len(self.records)))


def test_precision_choice():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype(cpu, "auto") is None  # CPU default stays float32
    assert autocast_dtype(cpu, "bf16") is torch.bfloat16 and autocast_dtype(cuda, "fp16") is torch.float16
    assert autocast_dtype(cuda, "fp32") is None
    with pytest.raises(UsageError, match="--precision must be one of"):
        autocast_dtype(cpu, "half")
    assert describe(cpu, None) == "cpu" and describe(cuda, torch.bfloat16) == "cuda (bf16 autocast)"


def test_encoders_autocast_but_objective_sees_float32_unit_vectors():
    seen = {}

    class Spy(nn.Module):
        def forward(self, embeddings):
            seen.update({m: z for m, z in embeddings.items()})
            loss = sum(z.sum() for z in embeddings.values())
            return ObjectiveOutput(loss=loss, terms={})

    encoders = nn.ModuleDict({"a": nn.Linear(8, 4), "b": nn.Linear(8, 4)})
    raw_dtypes = []
    for enc in encoders.values():
        enc.register_forward_hook(lambda mod, inp, out: raw_dtypes.append(out.dtype))
    model = EmbedAndScore(encoders, Spy(), torch.bfloat16)
    batch = {"a": torch.randn(5, 8), "b": torch.randn(5, 8)}
    model(batch).loss.backward()
    assert raw_dtypes == [torch.bfloat16, torch.bfloat16]  # the encoders ran under autocast
    assert all(z.dtype == torch.float32 for z in seen.values())
    assert all(torch.allclose(z.norm(dim=-1), torch.ones(5)) for z in seen.values())
    assert encoders["a"].weight.grad.dtype == torch.float32  # master weights stay float32


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_run_learns_and_monitors_see_every_step(precision):
    plan, config, registry = tiny_plan(objectives=("infonce",), steps=30)
    spec = plan.specs[0]
    recorder = Recorder()
    outcome = train_and_evaluate(spec, plan.data[spec.task], registry,
                                 TrainOptions(device=torch.device("cpu"), monitors=[recorder], probe_every=10,
                                              progress=False, precision=precision))
    assert outcome.status == "ok"
    skipped = outcome.stability.get("amp", {}).get("skipped_steps", 0)
    steps = [r.step for r in recorder.records]
    assert steps == sorted(set(steps)) and set(steps) <= set(range(1, 31))
    assert len(recorder.records) + skipped == 30
    assert ("amp" in outcome.stability) == (precision == "fp16")
    r1 = [m["R@1"] for m in outcome.metrics["retrieval"].values()]
    assert min(r1) > 5 / 128  # well above chance (1/128) after 30 steps


def test_monitors_get_records_in_order_before_each_probe():
    plan, config, registry = tiny_plan(steps=25)
    spec = plan.specs[0]
    recorder = Recorder()
    train_and_evaluate(spec, plan.data[spec.task], registry,
                       TrainOptions(device=torch.device("cpu"), monitors=[recorder], probe_every=10, progress=False))
    assert [r.step for r in recorder.records] == list(range(1, 26))
    assert all(r.finite and math.isfinite(r.loss) for r in recorder.records)
    # probes at 0, 10, 20 and the end see exactly the steps up to them
    assert recorder.probes == [(0, 0), (10, 10), (20, 20), (25, 25)]


def _count_syncs(monkeypatch, run) -> int:
    """How often host-syncing tensor methods are called while ``run`` runs."""
    calls = [0]
    for name in ("item", "tolist", "cpu", "__bool__", "__float__", "__int__"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, **kwargs):
            calls[0] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    run()
    monkeypatch.undo()
    return calls[0]


def test_training_steps_do_not_sync_with_the_host(monkeypatch):
    """30 more steps cost one more flush, not 30 more syncs: the step itself never reads a tensor back.

    Training only: evaluation's probes (L-BFGS) read their convergence checks back, as often as the data needs."""
    plan, config, registry = tiny_plan(steps=10)
    long_plan, _, _ = tiny_plan(steps=40)

    def run(p):
        spec = p.specs[0]
        return lambda: train(spec, p.data[spec.task], registry,
                             TrainOptions(device=torch.device("cpu"), probe_every=20, progress=False))

    short = _count_syncs(monkeypatch, run(plan))
    long = _count_syncs(monkeypatch, run(long_plan))
    assert 0 < long - short <= 3, (short, long)


def test_divergence_is_found_at_the_flush_and_names_the_first_bad_step(fresh_manager):
    class NaNAt(nn.Module):
        """InfoNCE-like toy whose loss turns NaN from step 7 on."""

        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def forward(self, embeddings):
            self.calls += 1
            a, b, *_ = embeddings.values()
            loss = (1 - (a * b).sum(-1)).mean()
            if self.calls >= 7:
                loss = loss * float("nan")
            return ObjectiveOutput(loss=loss, terms={"cos": loss})

    class Plugin:
        from pmrl_bench import hookimpl

        @hookimpl
        def register_objectives(self, register):
            register("nan-at-7", NaNAt)

    fresh_manager.register_plugin(Plugin(), name="nan-plugin")
    plan, config, registry = tiny_plan(objectives=("nan-at-7",), steps=30)
    spec = plan.specs[0]
    recorder = Recorder()
    outcome = train_and_evaluate(spec, plan.data[spec.task], registry,
                                 TrainOptions(device=torch.device("cpu"), monitors=[recorder], probe_every=10,
                                              progress=False))
    assert outcome.status == "diverged" and outcome.diverged_step == 7
    assert [r.step for r in recorder.records] == list(range(1, 8)) and not recorder.records[-1].finite
    assert all(r.finite for r in recorder.records[:-1])
