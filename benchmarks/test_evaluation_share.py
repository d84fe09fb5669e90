"""Evaluation's share of a default ``mfeat`` run on the CPU: a whole run against the evaluation it contains.

Run (opt-in; the test suite skips benchmarks):

    python -m pytest benchmarks/test_evaluation_share.py --benchmark-only --benchmark-timer=time.process_time

Group ``mfeat run``: the baseline is one default run (``infonce``, 300 steps, batch 128, the default stability
monitors, evaluation of the final and of the starting state). The other rows evaluate those two states the way the
run does (``runner.train.evaluate_trained``), with the torch probes (the default) and with scikit-learn's
(``--probe sklearn``), then each part of the torch evaluation on its own:

* ``final state``: retrieval (cosine, multimodal) and the linear and k-NN probes of every view;
* ``robustness``: the missing-modality views (retrieval and the fused probe, each modality left out) and the
  noisy-modality views (three noise levels, each modality re-embedded);
* ``starting state``: retrieval and the fused probes of the encoders the run started from.

The printed ``x baseline time`` of each row is its share of the run. The baseline also times, in every round, the
evaluation inside that very run, and prints the median of those shares: the machine's speed cannot drift between
the numerator and the denominator there, which on a shared machine makes it the steadier figure. Target: at most 5 %.

Group ``mfeat sweep``: what ``pmrl-bench run --tasks mfeat`` does for each seed, every built-in objective from one
starting state (two rounds of nine runs, a few minutes in all). The sweep evaluates that starting state once and
hands its metrics to every run (``runner.start_state``); the baseline row turns that off, so each run evaluates its
own. Each row prints the share of the sweep spent in evaluation, timed inside the sweep.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import replace

import pytest
import torch

from pmrl_bench.evaluation.retrieval import pairwise_retrieval
from pmrl_bench.evaluation.robustness import robustness_views
from pmrl_bench.evaluation.embedding import embed, split_tensors
from pmrl_bench.evaluation.suite import evaluate
from pmrl_bench.plugins import get_registry
from pmrl_bench.results import ResultStore
from pmrl_bench.runner.jobs import run_threads
from pmrl_bench.runner.start_state import StartEvaluations
from pmrl_bench.runner.executor import collect_versions
from pmrl_bench.runner.sweep import execute_sweep
from pmrl_bench.runner.sweep_plan import SweepConfig, plan_sweep
from pmrl_bench.runner import train as train_module
from pmrl_bench.runner.train import TrainOptions, build_encoders, evaluate_trained, train, train_and_evaluate
from pmrl_bench.stability import default_monitors

CPU = torch.device("cpu")
ROUNDS = {"rounds": 5, "warmup_rounds": 1}


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
    return train(spec, data, registry, TrainOptions(device=CPU, monitors=default_monitors(), progress=False))


def _timed(benchmark, fn, **info):
    benchmark.group = "mfeat run"
    benchmark.extra_info.update(threads=torch.get_num_threads(), **info)
    with run_threads(torch.get_num_threads()):  # BLAS pools as a run limits them (scikit-learn's probes)
        return benchmark.pedantic(fn, **ROUNDS)


def _time_evaluations(monkeypatch) -> list[float]:
    """Process seconds of every ``evaluate_trained`` call from now on, in order."""
    evaluation_seconds = []

    def timed_evaluation(*args, **kwargs):
        started = time.process_time()
        try:
            return evaluate_trained(*args, **kwargs)
        finally:
            evaluation_seconds.append(time.process_time() - started)

    monkeypatch.setattr(train_module, "evaluate_trained", timed_evaluation)
    return evaluation_seconds


def test_whole_run(benchmark, run, monkeypatch):
    spec, data, registry = run
    evaluation_seconds = _time_evaluations(monkeypatch)
    shares = []

    def one_run():
        started = time.process_time()
        outcome = train_and_evaluate(spec, data, registry,
                                     TrainOptions(device=CPU, monitors=default_monitors(), progress=False))
        shares.append(evaluation_seconds[-1] / (time.process_time() - started))
        return outcome

    outcome = _timed(benchmark, one_run, role="baseline", steps=spec.budget.steps)
    shares = shares[ROUNDS["warmup_rounds"]:]
    benchmark.extra_info["shares"] = {"evaluation inside the run": shares}
    assert outcome.status == "ok" and outcome.metrics_at_init is not None
    assert len(shares) == ROUNDS["rounds"] and all(0 < share < 1 for share in shares)


@pytest.mark.parametrize("probe", ["torch", "sklearn"])
def test_evaluate_trained(benchmark, run, trained, probe):
    spec, data, _ = run
    spec = replace(spec, probe=probe)
    metrics, _, at_init = _timed(benchmark, lambda: evaluate_trained(trained, data, CPU, spec), probe=probe)
    assert all(0 <= v <= 1 for m in (metrics, at_init) for v in m["classification"].values())


def test_part_final_state(benchmark, run, trained):
    spec, data, _ = run
    metrics = _timed(benchmark, lambda: evaluate(trained.encoders, trained.objective, data, CPU, spec.seed),
                     part="final state")
    assert len(metrics["classification"]) == 2 * (len(data.modalities) + 1)


def test_part_robustness(benchmark, run, trained):
    spec, data, _ = run
    names = [m.name for m in data.modalities]
    inputs = split_tensors(data.test, names, CPU)
    queries = embed(trained.encoders, inputs)  # what the final state's evaluation already computed
    train_embeddings = embed(trained.encoders, split_tensors(data.train, names, CPU))
    pairwise = pairwise_retrieval(queries)
    views = _timed(benchmark, lambda: robustness_views(trained.encoders, inputs, queries, data.train.inputs, spec.seed,
                                                       train_embeddings, data.train.labels, data.test.labels,
                                                       pairwise=pairwise),
                   part="robustness")
    assert set(views) == {"missing_modality", "noise"}


def test_part_starting_state(benchmark, run, trained):
    spec, data, registry = run
    encoders = build_encoders(spec, data, registry)
    encoders.load_state_dict(trained.initial[0])
    metrics = _timed(benchmark, lambda: evaluate(encoders, trained.objective, data, CPU, spec.seed,
                                                 probe_views=("fused",)), part="starting state")
    assert set(metrics["classification"]) == {"linear:fused", "knn:fused"}


@pytest.mark.parametrize("shared_start", [False, True], ids=["each run evaluates its start", "start evaluated once"])
def test_default_sweep(benchmark, tmp_path, monkeypatch, shared_start):
    registry = get_registry()
    objectives = [n for n in registry.names("objective") if registry.get("objective", n).distribution == "pmrl-bench"]
    config = SweepConfig(objectives=objectives, tasks=["mfeat"], seeds=1, progress=False, device="cpu", threads=1)
    plan = plan_sweep(config, registry)
    if not shared_start:
        monkeypatch.setattr(StartEvaluations, "key", lambda *args, **kwargs: None)
    evaluation_seconds = _time_evaluations(monkeypatch)
    shares, rounds = [], itertools.count()

    def sweep():
        del evaluation_seconds[:]
        store = ResultStore(tmp_path / f"results-{next(rounds)}")  # nothing done yet, every round
        started = time.process_time()
        summary = execute_sweep(plan, config, registry, store, collect_versions({}), default_monitors)
        shares.append(sum(evaluation_seconds) / (time.process_time() - started))
        return summary

    benchmark.group = "mfeat sweep"
    benchmark.extra_info.update(runs=len(plan.specs), threads=config.threads, shared_start=shared_start)
    if not shared_start:
        benchmark.extra_info["role"] = "baseline"
    summary = benchmark.pedantic(sweep, rounds=2, warmup_rounds=0, iterations=1)
    benchmark.extra_info["shares"] = {"evaluation inside the sweep": shares}
    assert summary.ok == len(plan.specs) == len(objectives) and len(evaluation_seconds) == len(objectives)
