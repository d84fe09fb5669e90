"""`pmrl-bench tune` says what it does not search: an objective without a search space gets one line naming the
parameters it leaves at their values; an objective not applicable to a task gets no study there."""

from __future__ import annotations

import pytest

from pmrl_bench import hookimpl
from pmrl_bench.cli import main
from pmrl_bench.runner.spec import Budget
from pmrl_bench.runner.sweep_plan import SweepConfig
from pmrl_bench.tuning.study import TuneSettings
from pmrl_bench.tuning.study_plan import plan_tuning, unsearched_parameters

SMALL = {("task", "synthetic"): {"n_train": "160", "n_test": "100"}}


def _scaled(scale: float = 1.0, hard: bool = False, dim: int | None = None):
    """An objective with parameters and no search space.

    Args:
        scale: multiplies the temperature.
        hard: unused here.
        dim: the embedding dimension, supplied by the runner.
    """
    from pmrl_bench.testing import reference_objective

    return reference_objective(0.1 * scale)


class _Plugin:
    @hookimpl
    def register_objectives(self, register):
        register("no-space", _Scaled)
        register("no-space-dim", _scaled)


class _Scaled:
    def __new__(cls, scale: float = 1.0, hard: bool = False):
        return _scaled(scale, hard)


@pytest.fixture
def registry(fresh_manager):
    fresh_manager.register_plugin(_Plugin(), name="no-space-plugin")
    return fresh_manager.registry


def _config(objectives: list[str], **task: str) -> SweepConfig:
    overrides = {key: dict(value) for key, value in SMALL.items()}
    overrides[("task", "synthetic")].update(task)
    return SweepConfig(objectives=objectives, tasks=["synthetic"], seeds=1, overrides=overrides, device="cpu",
                       budget=Budget(steps=4, batch_size=32, dim=8), progress=False)


def test_an_objective_without_a_space_is_named_with_what_it_leaves_alone(registry, tmp_path, capsys):
    config = _config(["no-space", "infonce", "no-space-dim"])
    config.overrides[("objective", "no-space")] = {"scale": "2.0"}
    studies, _ = plan_tuning(config, TuneSettings(trials=2), registry, tmp_path)
    assert [s.spec.objective for s in studies] == ["no-space", "infonce", "no-space-dim"]
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "pmrl-bench: objective 'no-space' declares no search space: tune searches the learning rate and weight decay "
        "only and leaves scale=2.0, hard=False at their values",
        "pmrl-bench: objective 'no-space-dim' declares no search space: tune searches the learning rate and weight "
        "decay only and leaves scale=1.0, hard=False at their values",  # dim is the runner's (--dim)
    ]


def test_a_weighted_sum_names_each_part_s_parameters():
    params = {"weights": {"infonce": 1.0, "no-space": 0.5},
              "parts": {"infonce": {"temperature": 0.07}, "no-space": {"scale": 1.0, "dim": 8}}}
    assert unsearched_parameters(params) == ["infonce.temperature=0.07", "no-space.scale=1.0"]


def test_a_study_is_not_planned_where_the_objective_is_not_applicable(registry, tmp_path, capsys):
    studies, plan = plan_tuning(_config(["infonce", "triangle"], modalities="4"), TuneSettings(trials=2), registry,
                                tmp_path)
    assert [s.spec.objective for s in studies] == ["infonce"] and ("synthetic", "triangle") in plan.not_applicable
    assert capsys.readouterr().err.count("is not applicable to task 'synthetic'") == 1


def test_tune_prints_the_line_once_and_still_tunes(registry, tmp_path, capsys):
    root = tmp_path / "results"
    assert main(["tune", "--objectives", "no-space", "--trials", "1", "--results", str(root), "--tasks", "synthetic",
                 "--set", "task.synthetic.n_train=160", "--set", "task.synthetic.n_test=100", "--steps", "2",
                 "--batch-size", "32", "--dim", "8", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert err.count("declares no search space") == 1 and "1 studies" in out
