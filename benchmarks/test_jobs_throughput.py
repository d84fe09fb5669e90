"""Sweep throughput with ``--jobs 2`` against ``--jobs 1``: the same small sweep, fresh results each round.

Run (opt-in; the test suite skips benchmarks), on a machine with at least two free cores:

    python -m pytest benchmarks/test_jobs_throughput.py --benchmark-only

Wall-clock time is the measure here (do not pass ``--benchmark-timer=time.process_time``: the parent process
sleeps while its workers train). The sweep is 12 default-budget runs on ``synthetic`` (``infonce`` and ``anchor``,
6 seeds, 300 steps, one torch thread per run); the ``jobs=2`` row includes starting its two workers (each imports
torch and receives the sweep, a few seconds). Target: ``jobs=2`` at least 1.6x the throughput of ``jobs=1``.
"""

from __future__ import annotations

import itertools

import pytest

from pmrl_bench.plugins import get_registry
from pmrl_bench.results import ResultStore
from pmrl_bench.runner.sweep import SweepConfig, collect_versions, execute_sweep, plan_sweep

SWEEP = {"objectives": ["infonce", "anchor"], "tasks": ["synthetic"], "seeds": 6}
_rounds = itertools.count()


@pytest.mark.parametrize("jobs", [1, 2])
def test_sweep_throughput(benchmark, tmp_path, jobs):
    config = SweepConfig(**SWEEP, device="cpu", progress=False, jobs=jobs, threads=1)
    registry = get_registry()
    plan = plan_sweep(config, registry)

    def sweep():
        store = ResultStore(tmp_path / f"results-{next(_rounds)}")  # nothing done yet, every round
        return execute_sweep(plan, config, registry, store, collect_versions({}))

    benchmark.group = "sweep of 12 runs"
    benchmark.extra_info.update(jobs=jobs, runs=len(plan.specs), threads_per_run=config.threads)
    if jobs == 1:
        benchmark.extra_info["role"] = "baseline"
    summary = benchmark.pedantic(sweep, rounds=2, warmup_rounds=0, iterations=1)
    assert summary.ok == len(plan.specs) == 12 and summary.all_ok
