"""The cost of a run in its result: trainable parameters, milliseconds per training step, peak memory."""

from __future__ import annotations

import pytest
import torch

from pmrl_bench.runner import cost
from pmrl_bench.runner.cost import CostMeter
from pmrl_bench.testing import TINY_TASK, run_one_step


def test_a_result_records_parameters_step_time_and_memory(tmp_path, pmrl_plugin_manager):
    result = run_one_step(pmrl_plugin_manager.registry, tmp_path, objective="infonce", task=TINY_TASK,
                          encoders={m: "linear" for m in ("m0", "m1", "m2")}, steps=60, batch_size=16, dim=16)
    spent = result.cost
    # by hand: three Linear(8 -> 16) encoders, weight and bias; infonce learns one logit scale
    assert spent["params_by_part"] == {"encoders": 3 * (8 * 16 + 16), "objective": 1}
    assert spent["params"] == 3 * (8 * 16 + 16) + 1
    # flushes at steps 25, 50 and 60 (the default probe cadence): the first interval is warm-up and left out
    assert spent["timed_steps"] == 35
    assert 0 < spent["ms_per_step"] < 60_000
    assert spent["memory"] == "process_rss"
    # a Python process with torch loaded holds tens of MB at least
    assert 20 * 1024**2 < spent["peak_memory_bytes"] < 1024**4


def test_frozen_parameters_are_not_counted(pmrl_plugin_manager):
    encoders = torch.nn.ModuleDict({"a": torch.nn.Linear(3, 5), "b": torch.nn.Linear(4, 5)})
    encoders["b"].weight.requires_grad_(False)
    meter = CostMeter(encoders, torch.nn.Module(), torch.device("cpu"))
    assert meter.params == {"encoders": 3 * 5 + 5 + 5, "objective": 0}


def test_step_time_is_the_median_per_step_over_the_timed_intervals(monkeypatch):
    clock = iter([0.0, 1.0,       # interval 1: 1 s over 10 steps (warm-up, left out)
                  5.0, 5.2,       # interval 2: 0.2 s over 10 steps -> 20 ms
                  6.0, 6.3,       # interval 3: 0.3 s over 10 steps -> 30 ms
                  7.0, 7.5])      # interval 4: 0.5 s over 5 steps -> 100 ms
    monkeypatch.setattr(cost.time, "perf_counter", lambda: next(clock))
    meter = CostMeter(torch.nn.Linear(2, 2), torch.nn.Module(), torch.device("cpu"))
    for steps in (10, 10, 10, 5):
        meter.start_interval()
        meter.end_interval(steps)
    summary = meter.summary()
    assert summary["ms_per_step"] == pytest.approx(30.0)
    assert summary["timed_steps"] == 25


def test_without_psutil_memory_is_reported_missing(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_psutil(name, *args, **kwargs):
        if name == "psutil":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_psutil)
    summary = CostMeter(torch.nn.Linear(2, 2), torch.nn.Module(), torch.device("cpu")).summary()
    assert summary["peak_memory_bytes"] is None and summary["memory"].startswith("unavailable")
    assert summary["ms_per_step"] is None and summary["timed_steps"] == 0  # nothing timed yet
    assert summary["params"] == 6
