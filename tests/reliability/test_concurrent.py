"""Two sweeps into one results directory share the work: no run twice, no corrupt or duplicate file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from reliability_helpers import assert_complete, run_args

from pmrl_bench.plugins import get_registry
from pmrl_bench.results import ResultStore
from pmrl_bench.runner.spec import Budget
from pmrl_bench.runner.executor import collect_versions
from pmrl_bench.runner.sweep import execute_sweep
from pmrl_bench.stability import default_monitors
from pmrl_bench.runner.sweep_plan import SweepConfig, plan_sweep

CHILD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SUMMARY = re.compile(r"(\d+) runs: (\d+) ok, (\d+) diverged, (\d+) failed, (\d+) already done")


@pytest.mark.slow
def test_two_processes_on_one_results_directory(tmp_path):
    results = tmp_path / "results"
    seeds = 4
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pmrl_bench", *run_args(results, tmp_path / f"boards{i}", seeds=seeds, steps=10)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **CHILD_ENV},
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    counts = [tuple(map(int, SUMMARY.search(out).groups())) for out, _ in outputs]
    assert all(planned == seeds and ok + skipped == seeds for planned, ok, _, _, skipped in counts), counts
    assert sum(c[1] for c in counts) == seeds, counts  # every run trained exactly once, by one of the two
    assert_complete(results, seeds)
    for i in range(2):  # whichever finished last wrote leaderboards that match all results
        assert (tmp_path / f"boards{i}" / "synthetic.md").exists()


def _config(**kwargs) -> SweepConfig:
    return SweepConfig(objectives=["infonce"], tasks=["synthetic"], seeds=2,
                       budget=Budget(steps=5, batch_size=32, dim=16),
                       overrides={("task", "synthetic"): {"n_train": "128", "n_test": "64"}},
                       device="cpu", progress=False, **kwargs)


def _sweep(results: Path, **kwargs):
    config = _config(**kwargs)
    registry = get_registry()
    plan = plan_sweep(config, registry)
    return plan, execute_sweep(plan, config, registry, ResultStore(results), collect_versions({}), default_monitors)


def test_a_claimed_run_is_deferred_then_taken_over_by_its_holder(tmp_path):
    """Deterministic, in one process: another 'process' (a thread holding the claim) finishes seed 0 meanwhile.

    The sweep trains seed 1 first, then waits for seed 0's claim, then finds the holder's result and
    does not train it again, even with --rerun.
    """
    donor_plan, _ = _sweep(tmp_path / "donor")  # a valid seed-0 result to hand over
    seed0 = donor_plan.specs[0]
    donor = ResultStore(tmp_path / "donor").existing(seed0.task, seed0.objective, seed0.config_id, 0)
    store = ResultStore(tmp_path / "results")
    seed1_path = store.path_for(seed0.task, seed0.objective, seed0.config_id, 1)
    claimed = threading.Event()

    def other_process() -> None:
        claim = store.claim(seed0.task, seed0.objective, seed0.config_id, 0)
        claim.acquire()
        claimed.set()
        while not seed1_path.exists():  # the sweep moved on to seed 1 instead of waiting
            time.sleep(0.01)
        time.sleep(0.05)
        store.write(donor)
        claim.release()

    holder = threading.Thread(target=other_process)
    holder.start()
    assert claimed.wait(timeout=30)
    _, summary = _sweep(tmp_path / "results", rerun=True)
    holder.join(timeout=60)
    assert (summary.ok, summary.skipped) == (1, 1)
    assert [p.name for p in summary.written] == [seed1_path.name]
    assert store.existing(seed0.task, seed0.objective, seed0.config_id, 0) == donor


def test_a_released_claim_without_a_result_is_trained_by_the_waiter(tmp_path):
    """A holder that dies (or gives up) before writing leaves the run to whoever waits for it."""
    plan = plan_sweep(_config(), get_registry())
    spec = plan.specs[0]
    store = ResultStore(tmp_path / "results")
    claimed = threading.Event()

    def dying_holder() -> None:
        claim = store.claim(spec.task, spec.objective, spec.config_id, spec.seed)
        claim.acquire()
        claimed.set()
        time.sleep(0.5)
        claim.release()

    # a temporary of the dead holder's half-written result: removed by whoever claims the run next
    leftover = store.path_for(spec.task, spec.objective, spec.config_id, spec.seed).with_name(
        f".{spec.config_id}-seed0.json.dead.tmp")
    leftover.parent.mkdir(parents=True)
    leftover.write_text("{")
    holder = threading.Thread(target=dying_holder)
    holder.start()
    assert claimed.wait(timeout=30)
    _, summary = _sweep(tmp_path / "results")
    holder.join(timeout=60)
    assert (summary.ok, summary.skipped) == (2, 0)
    assert_complete(tmp_path / "results", 2)


def test_claims_stay_out_of_git_and_out_of_scans(tmp_path):
    _sweep(tmp_path / "results")
    claims = tmp_path / "results" / ".claims"
    assert (claims / ".gitignore").read_text().splitlines()[-1] == "*"
    results, problems = ResultStore(tmp_path / "results").scan()
    assert len(results) == 2 and problems == []
