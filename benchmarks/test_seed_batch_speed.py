"""Ten seeds of one default ``mfeat`` configuration trained as one model against one after another.

Run (opt-in; the test suite skips benchmarks):

    python -m pytest benchmarks/test_seed_batch_speed.py --benchmark-only --benchmark-timer=time.process_time

Both rows train the same ten runs (default encoders, the default monitors, 300 steps, one torch thread) and
evaluate nothing: ``sequential`` is ten ``train`` calls, today's path and the baseline; ``batched`` is one
:class:`~pmrl_bench.runner.seed_batch.SeedBatchLoop` over the ten seeds. Target: batched at least 1.2x faster.
On CUDA (when there is one) the same two rows run on the GPU; drop ``--benchmark-timer`` there.
"""

from __future__ import annotations

import pytest
import torch

from pmrl_bench.device import synchronize
from pmrl_bench.plugins import get_registry
from pmrl_bench.runner.seed_batch import SeedBatchLoop
from pmrl_bench.runner.spec import Budget
from pmrl_bench.runner.sweep_plan import SweepConfig, plan_sweep
from pmrl_bench.runner.train import TrainOptions, train
from pmrl_bench.stability import default_monitors

SEEDS = 10
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module", params=["infonce", "pmrl"])
def plan(request):
    config = SweepConfig(objectives=[request.param], tasks=["mfeat"], seeds=SEEDS, budget=Budget(),
                         progress=False)
    return plan_sweep(config, get_registry())


def _options(device: str) -> TrainOptions:
    return TrainOptions(device=torch.device(device), monitors=default_monitors(), progress=False)


@pytest.mark.parametrize("device", DEVICES)
def test_sequential(benchmark, plan, device):
    benchmark.group = f"{plan.specs[0].objective}, {SEEDS} seeds, {device}"
    benchmark.extra_info["role"] = "baseline"
    registry, data = get_registry(), plan.data["mfeat"]

    def run():
        statuses = [train(spec, data, registry, _options(device), keep_initial=False).status for spec in plan.specs]
        synchronize(torch.device(device))
        return statuses

    assert benchmark.pedantic(run, rounds=2, iterations=1) == ["ok"] * SEEDS


@pytest.mark.parametrize("device", DEVICES)
def test_batched(benchmark, plan, device):
    benchmark.group = f"{plan.specs[0].objective}, {SEEDS} seeds, {device}"
    registry, data = get_registry(), plan.data["mfeat"]

    def run():
        loop = SeedBatchLoop(plan.specs, data, registry, [_options(device) for _ in plan.specs], keep_initial=False)
        statuses = [trained.status for trained in loop.run()]
        synchronize(torch.device(device))
        return statuses

    assert benchmark.pedantic(run, rounds=2, iterations=1) == ["ok"] * SEEDS
