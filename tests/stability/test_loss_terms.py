"""The objective's loss terms in the optimisation block: each term's final value and its curve at the probe cadence."""

from __future__ import annotations

import math

import pytest
import torch

from pmrl_bench.runner.monitor import StepRecord, TrainContext
from pmrl_bench.stability.optimisation import OptimisationMonitor
from pmrl_bench.testing import run_one_step


def _record(step: int, terms: dict[str, float], loss: float | None = None, finite: bool = True) -> StepRecord:
    loss = sum(terms.values()) if loss is None else loss
    return StepRecord(step=step, loss=loss, terms=terms, grad_norm=1.0, clipped=False, finite=finite)


def test_terms_are_averaged_per_probe_interval_and_their_last_value_kept():
    monitor = OptimisationMonitor()
    monitor.on_train_start(TrainContext(10, ["a", "b"], torch.nn.Module()))
    monitor.on_probe(0, {})
    for step in range(1, 11):
        terms = {"align": float(step), "uniform": -2.0 * step}
        if step >= 7:  # a term an objective reports only late in training
            terms["late"] = 0.5
        monitor.on_step(_record(step, terms))
        if step % 5 == 0:
            monitor.on_probe(step, {})
    monitor.on_step(_record(11, {"align": math.nan}, loss=math.nan, finite=False))  # a non-finite step is left out
    summary = monitor.summary()
    assert summary["terms_final"] == {"align": 10.0, "late": 0.5, "uniform": -20.0}
    curves = summary["curves"]
    assert curves["step"] == [5, 10]
    assert curves["term:align"] == [3.0, 8.0]  # means of steps 1-5 and 6-10
    assert curves["term:uniform"] == [-6.0, -16.0]
    assert curves["term:late"] == [None, 0.5]  # no value in the first interval
    assert curves["loss"] == [-3.0, -8.0 + 4 * 0.5 / 5]


def test_an_objective_without_terms_records_none():
    monitor = OptimisationMonitor()
    monitor.on_train_start(TrainContext(2, ["a", "b"], torch.nn.Module()))
    monitor.on_step(_record(1, {}, loss=1.0))
    monitor.on_probe(1, {})
    summary = monitor.summary()
    assert summary["terms_final"] == {} and not [k for k in summary["curves"] if k.startswith("term:")]


def test_a_run_records_pmrls_terms_and_they_add_up_to_the_loss(tmp_path, fresh_manager):
    result = run_one_step(fresh_manager.registry, tmp_path, objective="pmrl", task="synthetic",
                          task_params={"n_train": 128, "n_test": 64}, steps=30, batch_size=32, dim=16)
    block = result.stability["optimisation"]
    assert set(block["terms_final"]) == {"intra", "inter"}
    # the final values come from the same step as loss_final (pmrl's loss is intra + inter)
    assert sum(block["terms_final"].values()) == pytest.approx(block["loss_final"], rel=1e-4)
    curves = block["curves"]
    assert len(curves["term:intra"]) == len(curves["term:inter"]) == len(curves["step"]) == 2  # steps 25 and 30
    for loss, intra, inter in zip(curves["loss"], curves["term:intra"], curves["term:inter"]):
        assert intra + inter == pytest.approx(loss, rel=1e-3)
