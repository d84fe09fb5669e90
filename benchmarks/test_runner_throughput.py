"""Runner step throughput against a hand-written minimal training loop: same model, data, loss and budget.

Run (opt-in; the test suite skips benchmarks):

    python -m pytest benchmarks/test_runner_throughput.py --benchmark-only --benchmark-group-by=param \
        --benchmark-timer=time.process_time

CPU rows run torch on one thread and, with ``--benchmark-timer=time.process_time``, time CPU seconds, which stay
meaningful on a shared machine; on a GPU drop that option (process time does not see the GPU).

Each group holds two rows that differ only in who drives the steps: ``runner`` is ``train_and_evaluate`` (no
monitors, evaluation stubbed out, so only the training loop is timed) and ``hand`` is the twelve-line loop a user
would write (plain AdamW, normalise, loss, backward, clip, step). Target: the runner at most 10% slower (Mean ratio).
Timed callables synchronise the device before returning, so CUDA rows time kernels, not launches.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pmrl_bench.plugins import get_registry
from pmrl_bench.runner import train
from pmrl_bench.device import synchronize
from pmrl_bench.runner.spec import Budget
from pmrl_bench.runner.sweep_plan import SweepConfig, plan_sweep

STEPS = 100
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])



@pytest.fixture(scope="module", params=["infonce", "pmrl"])
def plan(request):
    config = SweepConfig(objectives=[request.param], tasks=["synthetic"], seeds=1,
                         budget=Budget(steps=STEPS, batch_size=128), progress=False)
    return plan_sweep(config, get_registry())


def hand_written_loop(spec, data, registry, device: torch.device) -> float:
    """The minimal loop: same encoders, objective, data, batches and optimiser settings as the runner."""
    budget, names = spec.budget, [m.name for m in data.modalities]
    train.seed_everything(spec.seed)
    encoders = train.build_encoders(spec, data, registry).to(device)
    objective = registry.get("objective", spec.objective).create(**spec.objective_params).to(device)
    params = [*encoders.parameters(), *objective.parameters()]
    optimiser = torch.optim.AdamW(params, lr=budget.lr, betas=(0.9, 0.98), weight_decay=budget.weight_decay)
    inputs = {m: torch.as_tensor(data.train.inputs[m]).to(device) for m in names}
    generator = torch.Generator().manual_seed(spec.seed)
    for index in train.batches(len(data.train), budget.batch_size, budget.steps, generator):
        index = index.to(device)
        loss = objective({m: F.normalize(encoders[m](inputs[m][index]), dim=-1) for m in names}).loss
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, budget.grad_clip)
        optimiser.step()
    return loss.item()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("loop", ["hand", "runner"])
def test_runner_vs_hand_written_loop(benchmark, plan, monkeypatch, loop, device):
    monkeypatch.setattr(train, "evaluate_trained", lambda *args, **kwargs: ({}, {}, None))  # both states' evaluation
    spec, registry, target = plan.specs[0], get_registry(), torch.device(device)
    data = plan.data[spec.task]

    def run():
        if loop == "hand":
            result = hand_written_loop(spec, data, registry, target)
        else:
            result = train.train_and_evaluate(
                spec, data, registry,
                train.TrainOptions(device=target, probe_every=SweepConfig.probe_every, progress=False)).status
        synchronize(target)
        return result

    benchmark.extra_info.update(steps=STEPS, batch_size=spec.budget.batch_size, objective=spec.objective,
                                device=device, threads=torch.get_num_threads())
    result = benchmark.pedantic(run, rounds=7, warmup_rounds=1, iterations=1)
    assert result == "ok" if loop == "runner" else result == result  # a finite loss (NaN != NaN)
