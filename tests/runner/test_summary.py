"""The sweep summary: what the line ``run`` ends with counts, folded from the reports of several workers."""

from __future__ import annotations

import argparse

from pmrl_bench.cli.training import summary_line
from pmrl_bench.runner.summary import RunReport, SweepSummary


def _line(*reports: RunReport) -> str:
    summary = SweepSummary()
    for report in reports:
        summary.add(report)
    args = argparse.Namespace(shard=None, launcher=None, results="results", leaderboard="boards")
    return summary_line(summary, len(reports), args, pages=1)


def test_an_init_stage_read_by_two_workers_counts_once():
    # with --jobs 2 each worker process reads the stages its runs need from disk, once per process
    line = _line(RunReport("a", ran="ok", init_reused=["synthetic/k-seed0.safetensors"]),
                 RunReport("b", ran="ok", init_reused=["synthetic/k-seed0.safetensors",
                                                       "synthetic/k-seed1.safetensors"]))
    assert "init stages: 0 trained, 2 reused" in line


def test_a_stage_one_worker_trained_and_another_read_counts_as_trained():
    line = _line(RunReport("a", ran="ok", init_trained=["synthetic/k-seed0.safetensors"]),
                 RunReport("b", ran="ok", init_reused=["synthetic/k-seed0.safetensors"]))
    assert "init stages: 1 trained, 0 reused" in line


def test_a_sweep_without_warm_start_says_nothing_of_init_stages():
    assert "init stages" not in _line(RunReport("a", ran="ok"))
