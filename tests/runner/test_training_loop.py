"""The training loop's parts: the update that skips itself on a non-finite step, and a loop run step by step
that gives what ``train`` gives."""

from __future__ import annotations

import math

import pytest
import torch

from pmrl_bench.plugins import get_registry
from pmrl_bench.runner.spec import Budget
from pmrl_bench.runner.sweep_plan import SweepConfig, plan_sweep
from pmrl_bench.runner.train import TrainingLoop, TrainOptions, step_unless_nonfinite, train
from pmrl_bench.testing import REFERENCE_OBJECTIVE, TINY_TASK


def _optimiser() -> tuple[torch.nn.Parameter, torch.optim.AdamW]:
    weight = torch.nn.Parameter(torch.ones(4))
    return weight, torch.optim.AdamW([weight], lr=0.1, fused=True)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["loss", "grad_norm"])
def test_a_non_finite_step_leaves_parameters_and_moments_unchanged(bad, where):
    weight, optimiser = _optimiser()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    weight.grad = torch.full((4,), 0.5)
    step_unless_nonfinite(optimiser, scaler, torch.tensor(1.0), torch.tensor(0.5))  # one good step: moments exist
    after_good = weight.detach().clone()
    moments = {k: v.clone() for k, v in optimiser.state[weight].items() if k != "step"}
    assert not torch.equal(after_good, torch.ones(4))

    weight.grad = torch.full((4,), 0.5)
    loss = torch.tensor(bad if where == "loss" else 1.0)
    grad_norm = torch.tensor(bad if where == "grad_norm" else 0.5)
    step_unless_nonfinite(optimiser, scaler, loss, grad_norm)
    assert torch.equal(weight.detach(), after_good)
    for key, value in moments.items():
        assert torch.equal(optimiser.state[weight][key], value), key


def test_a_finite_step_after_a_skipped_one_updates_again():
    weight, optimiser = _optimiser()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    weight.grad = torch.full((4,), 0.5)
    step_unless_nonfinite(optimiser, scaler, torch.tensor(math.nan), torch.tensor(0.5))
    assert torch.equal(weight.detach(), torch.ones(4))
    step_unless_nonfinite(optimiser, scaler, torch.tensor(1.0), torch.tensor(0.5))
    assert (weight.detach() < 1).all()  # a positive gradient moves the weights down


def _spec_and_data():
    config = SweepConfig(objectives=[REFERENCE_OBJECTIVE], tasks=[TINY_TASK], seeds=1, device="cpu", progress=False,
                         budget=Budget(steps=12, batch_size=16, lr=3e-3, dim=16))
    plan = plan_sweep(config, get_registry())
    return plan.specs[0], plan.data[TINY_TASK]


def test_the_loop_driven_step_by_step_gives_what_train_gives(pmrl_plugin_manager):
    spec, data = _spec_and_data()
    options = TrainOptions(progress=False, probe_every=4)
    whole = train(spec, data, get_registry(), options)

    loop = TrainingLoop(spec, data, get_registry(), options)
    from pmrl_bench.runner.train import batches

    diverged = None
    for step, index in enumerate(batches(len(loop.data.train), 16, 12, loop.generator), start=1):
        loop.step(step, index)
        if step % 4 == 0:
            diverged = loop.flush()
    by_hand = loop.trained(diverged)
    assert by_hand.status == whole.status == "ok"
    for name, value in whole.encoders.state_dict().items():
        assert torch.equal(by_hand.encoders.state_dict()[name], value), name
