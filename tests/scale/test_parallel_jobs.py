"""``run --jobs N``: worker processes share one sweep, give the results one process gives, survive a killed
worker, and stop together on Ctrl-C or SIGTERM with the usual one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pmrl_bench.cli import main
from pmrl_bench.errors import UsageError
from pmrl_bench.results import ResultStore
from pmrl_bench.runner import jobs as job_resolution
from pmrl_bench.runner import sweep
from pmrl_bench.runner.jobs import parse_jobs, physical_cores, resolve_jobs, worker_device

from child_signals import start
from parallel_helpers import StoppableObjectives
from scale_helpers import TINY_FLAGS

DRIVER = Path(__file__).with_name("parallel_driver.py")
CHILD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PMRL_BENCH_LOAD_PLUGINS": ""}


def _args(results: Path, boards: Path, objectives: str, seeds: int, steps: int, *extra: str) -> list[str]:
    return ["run", "--objectives", objectives, *TINY_FLAGS, "--seeds", str(seeds), "--steps", str(steps),
            "--results", str(results), "--leaderboard", str(boards), *extra]


def _measurements(results: Path) -> dict[str, str]:
    """Everything each run measured, as its result file stores it (canonical JSON text)."""
    found, problems = ResultStore(results).scan()
    assert problems == []
    out = {}
    for path in sorted(results.rglob("*.json")):
        stored = json.loads(path.read_text())
        out[stored["run_id"]] = json.dumps([stored[k] for k in ("status", "metrics", "metrics_at_init", "stability")])
    assert len(out) == len(found)
    return out


@pytest.mark.slow
def test_two_jobs_give_byte_identical_results_to_one(tmp_path, capsys, monkeypatch):
    """PMRL's eigh-based loss changes with torch's thread count; every run uses --threads whatever --jobs is."""
    calls = []
    real = sweep.execute_parallel
    monkeypatch.setattr(sweep, "execute_parallel", lambda *a, **k: calls.append(a[7]) or real(*a, **k))  # a[7]: jobs
    outputs = {}
    for jobs in ("1", "2"):
        results = tmp_path / f"results{jobs}"
        args = _args(results, tmp_path / f"boards{jobs}", "pmrl,infonce", 1, 15, "--jobs", jobs)
        assert main(args) == 0
        assert "2 runs: 2 ok, 0 diverged, 0 failed, 0 already done" in capsys.readouterr().out
        outputs[jobs] = _measurements(results)
    assert calls == [2]  # --jobs 1 trained in this process, --jobs 2 in two workers
    assert len(outputs["1"]) == 2 and outputs["1"] == outputs["2"]


def _start(args: list[str], **popen) -> subprocess.Popen:
    """The driver, with default signal dispositions: the tests signal it (see child_signals)."""
    return start([sys.executable, str(DRIVER), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                 text=True, env={**os.environ, **CHILD_ENV}, **popen)


@pytest.mark.slow
def test_a_killed_worker_loses_only_its_run_which_the_next_invocation_trains(tmp_path, capsys, fresh_manager):
    results, boards, marker = tmp_path / "results", tmp_path / "boards", tmp_path / "died"
    args = _args(results, boards, "stoppable-align", 3, 12,
                 "--set", "objective.stoppable-align.at_step=4",
                 "--set", f"objective.stoppable-align.die_marker={marker}")
    proc = _start([*args, "--jobs", "2"])
    out, err = proc.communicate(timeout=300)

    assert proc.returncode == 1, err
    dead_pid = marker.read_text().strip()
    died = [line for line in err.splitlines() if ") died (" in line]
    assert len(died) == 1 and f"(pid {dead_pid}) died (killed by SIGKILL) during synthetic/stoppable-align/" in died[0]
    assert "3 runs: 2 ok, 0 diverged, 0 failed, 0 already done, 1 not trained (worker died)" in out, out
    assert "1 run(s) were not trained because worker processes died" in err.splitlines()[-1]
    found, problems = ResultStore(results).scan()
    assert problems == [] and len(found) == 2 and not list(results.rglob("*.tmp"))
    lost = died[0].split("during ")[1].split(",")[0]
    assert lost not in {r.run_id for r in found}

    capsys.readouterr()  # the next invocation, in this process, with the same objective
    fresh_manager.register_plugin(StoppableObjectives(), name="stoppable-objectives")
    assert main(args) == 0  # the marker exists: no second death
    assert "3 runs: 1 ok, 0 diverged, 0 failed, 2 already done" in capsys.readouterr().out
    assert lost in {r.run_id for r in ResultStore(results).scan()[0]}


@pytest.mark.parametrize(("sig", "status", "name", "group"), [
    (signal.SIGTERM, 143, "SIGTERM", False),  # e.g. a batch scheduler, to the parent only
    (signal.SIGINT, 130, "Ctrl-C", True),     # the terminal sends Ctrl-C to the whole process group
])
@pytest.mark.slow
def test_ctrl_c_and_sigterm_stop_every_worker_with_one_line(sig, status, name, group, tmp_path):
    results, boards, paused = tmp_path / "results", tmp_path / "boards", tmp_path / "paused"
    paused.mkdir()
    args = _args(results, boards, "stoppable-align", 3, 12, "--jobs", "2",
                 "--set", "objective.stoppable-align.at_step=3",
                 "--set", f"objective.stoppable-align.pause_dir={paused}")
    proc = _start(args, start_new_session=True)  # its own process group, so killpg reaches only the sweep
    deadline = time.monotonic() + 240
    while len(list(paused.iterdir())) < 2:  # both workers are in the middle of a run
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    workers = [int(p.name.split("-")[1]) for p in paused.iterdir()]
    (os.killpg if group else os.kill)(proc.pid, sig)
    _, err = proc.communicate(timeout=120)

    assert proc.returncode == status, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"pmrl-bench: interrupted by {name} during synthetic/stoppable-align/")
    assert "(not saved; they rerun): this sweep finished 0 of 3 runs" in lines[0] and "3 remain" in lines[0]
    for pid in workers:  # every worker is gone
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert ResultStore(results).scan() == ([], []) and not list(results.rglob("*.tmp"))


@pytest.mark.parametrize("flags", [["--jobs", "0"], ["--jobs", "many"], ["--threads", "0"]])
def test_bad_jobs_or_threads_is_one_line_and_status_2(flags, tmp_path, capsys):
    assert main(_args(tmp_path / "r", tmp_path / "b", "infonce", 1, 5, *flags)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and flags[0] in err[0] and "between 1 and 256" in err[0], err
    assert not (tmp_path / "r").exists()


def test_how_many_workers_and_which_device(monkeypatch):
    assert parse_jobs("auto") == "auto" and parse_jobs(" 3 ") == 3
    with pytest.raises(UsageError, match="--jobs must be"):
        parse_jobs("-1")
    cpu = torch.device("cpu")
    assert 1 <= physical_cores() <= (os.cpu_count() or 1)
    monkeypatch.setattr(job_resolution, "physical_cores", lambda: 8)
    assert resolve_jobs("auto", cpu, runs=100, threads=2) == 4  # physical cores // threads per run
    assert resolve_jobs("auto", cpu, runs=3, threads=1) == 3  # never more workers than runs
    assert resolve_jobs("auto", cpu, runs=100, threads=16) == 1
    assert resolve_jobs(6, cpu, runs=4, threads=1) == 4 and resolve_jobs(2, cpu, runs=0, threads=1) == 1

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    cuda = torch.device("cuda")
    assert resolve_jobs("auto", cuda, runs=100, threads=1) == 4  # one worker per GPU
    assert resolve_jobs("auto", torch.device("cuda:2"), runs=100, threads=1) == 1
    assert [worker_device(cuda, i) for i in range(5)] == [torch.device("cuda", i % 4) for i in range(5)]
    assert worker_device(torch.device("cuda:1"), 3) == torch.device("cuda:1")  # an explicit GPU is shared
    assert worker_device(cpu, 3) == cpu
