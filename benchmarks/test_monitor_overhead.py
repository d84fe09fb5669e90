"""Cost of the default stability monitors: the runner's training loop with them versus without, side by side.

Run (opt-in; the test suite skips benchmarks):

    python -m pytest benchmarks/test_monitor_overhead.py --benchmark-only --benchmark-group-by=param:device \
        --benchmark-timer=time.process_time

(``process_time`` on a shared CPU: wall-clock time there swings by several times with other people's load.)
The two rows of a group differ only in the monitors (the default set, probing every 25 steps, against none);
the "Mean" column's ratio is the overhead. The final evaluation is stubbed out in both, so the ratio is that
of the training loop alone, the strictest reading of "runner throughput".
"""

from __future__ import annotations

import pytest
import torch

from pmrl_bench.plugins import get_registry
from pmrl_bench.runner import train
from pmrl_bench.runner.spec import Budget
from pmrl_bench.runner.sweep_plan import SweepConfig, plan_sweep
from pmrl_bench.stability import default_monitors

STEPS = Budget().steps  # the default budget, at the default probe cadence
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])



@pytest.fixture(scope="module")
def plan():
    config = SweepConfig(
        objectives=["pmrl"], tasks=["synthetic"], seeds=1, budget=Budget(steps=STEPS, batch_size=128), progress=False,
    )
    return plan_sweep(config, get_registry())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("monitors", ["none", "default"])
def test_training_loop_with_and_without_monitors(benchmark, plan, monkeypatch, monitors, device):
    monkeypatch.setattr(train, "evaluate_trained", lambda *args, **kwargs: ({}, {}, None))  # both states' evaluation
    spec = plan.specs[0]
    data = plan.data[spec.task]
    registry = get_registry()

    def run():
        outcome = train.train_and_evaluate(
            spec, data, registry,
            train.TrainOptions(device=torch.device(device),
                               monitors=default_monitors() if monitors == "default" else [],
                               probe_every=SweepConfig.probe_every, progress=False))
        if device == "cuda":
            torch.cuda.synchronize()
        return outcome

    benchmark.extra_info.update(steps=STEPS, batch_size=spec.budget.batch_size, probe_every=SweepConfig.probe_every)
    outcome = benchmark.pedantic(run, rounds=7, warmup_rounds=1, iterations=1)
    assert outcome.status == "ok"
    assert bool(outcome.stability) == (monitors == "default")
