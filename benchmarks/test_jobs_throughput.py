"""Sweep throughput with ``--jobs 2`` against ``--jobs 1``: the same small sweep, fresh results each round.

Run (opt-in; the test suite skips benchmarks), on a machine with at least two free cores:

    python -m pytest benchmarks/test_jobs_throughput.py --benchmark-only

Wall-clock time is the measure here (do not pass ``--benchmark-timer=time.process_time``: the parent process
sleeps while its workers train). The sweep is 12 default-budget runs on ``synthetic`` (``infonce`` and ``anchor``,
6 seeds, 300 steps, one torch thread per run). Target: ``jobs=2`` at least 1.6x the throughput of ``jobs=1``.

Two groups time it:

* ``sweep of 12 runs``: ``execute_sweep`` inside this process. The ``jobs=1`` row trains in a process that has
  already imported everything; the ``jobs=2`` row includes starting its two workers, each a fresh interpreter that
  imports torch, receives the sweep and, at its first optimiser, imports ``torch._dynamo`` (a few seconds each).
* ``sweep of 12 runs, as typed``: the ``pmrl-bench run`` command itself, in a fresh process for each round, so
  both rows pay their start-up, as a user waits for it.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import pytest

from pmrl_bench.plugins import get_registry
from pmrl_bench.results import ResultStore
from pmrl_bench.runner.executor import collect_versions
from pmrl_bench.runner.sweep import execute_sweep
from pmrl_bench.stability import default_monitors
from pmrl_bench.runner.sweep_plan import SweepConfig, plan_sweep

SWEEP = {"objectives": ["infonce", "anchor"], "tasks": ["synthetic"], "seeds": 6}
_rounds = itertools.count()


@pytest.mark.parametrize("jobs", [1, 2])
def test_sweep_throughput(benchmark, tmp_path, jobs):
    config = SweepConfig(**SWEEP, device="cpu", progress=False, jobs=jobs, threads=1)
    registry = get_registry()
    plan = plan_sweep(config, registry)

    def sweep():
        store = ResultStore(tmp_path / f"results-{next(_rounds)}")  # nothing done yet, every round
        return execute_sweep(plan, config, registry, store, collect_versions({}), default_monitors)

    benchmark.group = "sweep of 12 runs"
    benchmark.extra_info.update(jobs=jobs, runs=len(plan.specs), threads_per_run=config.threads)
    if jobs == 1:
        benchmark.extra_info["role"] = "baseline"
    summary = benchmark.pedantic(sweep, rounds=2, warmup_rounds=0, iterations=1)
    assert summary.ok == len(plan.specs) == 12 and summary.all_ok


@pytest.mark.parametrize("jobs", [1, 2])
def test_sweep_throughput_as_typed(benchmark, tmp_path, jobs):
    command = [sys.executable, "-m", "pmrl_bench", "run", "--objectives", ",".join(SWEEP["objectives"]),
               "--tasks", ",".join(SWEEP["tasks"]), "--seeds", str(SWEEP["seeds"]), "--device", "cpu",
               "--threads", "1", "--jobs", str(jobs), "--no-progress", "--json"]
    environment = {**os.environ, "PMRL_BENCH_LOAD_PLUGINS": ""}  # the built-ins only, as the other group

    def sweep():
        round_dir = tmp_path / f"round-{next(_rounds)}"  # nothing done yet, every round
        return subprocess.run([*command, "--results", str(round_dir / "results"), "--leaderboard",
                               str(round_dir / "leaderboards")], env=environment, capture_output=True, text=True)

    benchmark.group = "sweep of 12 runs, as typed"
    benchmark.extra_info.update(jobs=jobs, runs=12, threads_per_run=1)
    if jobs == 1:
        benchmark.extra_info["role"] = "baseline"
    finished = benchmark.pedantic(sweep, rounds=2, warmup_rounds=0, iterations=1)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert json.loads(finished.stdout)["runs"]["ok"] == 12
