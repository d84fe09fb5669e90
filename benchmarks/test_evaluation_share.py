"""Evaluation's share of a default ``mfeat`` run on the CPU: a whole run against the evaluation it contains.

Run (opt-in; the test suite skips benchmarks):

    python -m pytest benchmarks/test_evaluation_share.py --benchmark-only --benchmark-timer=time.process_time

Group ``mfeat run``: the baseline is one default run (``infonce``, 300 steps, batch 128, the default stability
monitors, evaluation of the final and of the starting state), the other rows evaluate those two states the way
the run does (``runner.train.evaluate_trained``: every view and the robustness views of the final state, retrieval
and the fused probes of the starting state), with the torch probes (the default) and with scikit-learn's
(``--probe sklearn``). The printed
``x baseline time`` of the ``[torch]`` row is evaluation's share of the run. Target: at most 5 %.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from pmrl_bench.plugins import get_registry
from pmrl_bench.runner.parallel import run_threads
from pmrl_bench.runner.train import evaluate_trained, train, train_and_evaluate
from pmrl_bench.runner.sweep import SweepConfig, plan_sweep
from pmrl_bench.stability import default_monitors

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def run():
    config = SweepConfig(objectives=["infonce"], tasks=["mfeat"], seeds=1, progress=False, device="cpu")
    registry = get_registry()
    plan = plan_sweep(config, registry)
    spec = plan.specs[0]
    return spec, plan.data["mfeat"], registry


@pytest.fixture(scope="module")
def trained(run):
    spec, data, registry = run
    return train(spec, data, registry, CPU, default_monitors(), progress=False)


def test_whole_run(benchmark, run):
    spec, data, registry = run
    benchmark.group = "mfeat run"
    benchmark.extra_info.update(role="baseline", steps=spec.budget.steps, threads=torch.get_num_threads())
    with run_threads(torch.get_num_threads()):
        outcome = benchmark.pedantic(lambda: train_and_evaluate(spec, data, registry, CPU, default_monitors(),
                                                                progress=False), rounds=3, warmup_rounds=1)
    assert outcome.status == "ok" and outcome.metrics_at_init is not None


@pytest.mark.parametrize("probe", ["torch", "sklearn"])
def test_evaluation_of_final_and_starting_state(benchmark, run, trained, probe):
    spec, data, _ = run
    benchmark.group = "mfeat run"
    benchmark.extra_info.update(probe=probe, threads=torch.get_num_threads())
    spec = replace(spec, probe=probe)
    with run_threads(torch.get_num_threads()):  # BLAS pools as a run limits them (scikit-learn's probes)
        metrics, _, at_init = benchmark.pedantic(lambda: evaluate_trained(trained, data, CPU, spec),
                                                 rounds=3, warmup_rounds=1)
    assert all(0 <= v <= 1 for m in (metrics, at_init) for v in m["classification"].values())
