"""The starting state's evaluation is done once per starting state of a sweep, and every run gets exactly what
evaluating it again would give (its own ``retrieval_native`` included)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pmrl_bench.cli import main
from pmrl_bench.results import ResultStore
from pmrl_bench.runner import train as train_module
from pmrl_bench.runner.spec import Budget, EncoderChoice, RunSpec
from pmrl_bench.runner.start_state import StartEvaluations

TINY = ["--tasks", "synthetic", "--set", "task.synthetic.n_train=200", "--set", "task.synthetic.n_test=100",
        "--batch-size", "32", "--dim", "8", "--steps", "10", "--no-progress"]
SWEEP = ["--objectives", "infonce,gram,pmrl", "--seeds", "2"]  # gram ranks by a score of its own too


def _at_init(tmp_path, name: str) -> dict[tuple[str, int], dict]:
    results = tmp_path / name
    boards = tmp_path / f"{name}-boards"
    assert main(["run", "--results", str(results), "--leaderboard", str(boards), *TINY, *SWEEP]) == 0
    found, problems = ResultStore(results).scan()
    assert not problems and len(found) == 6
    return {(r.objective, r.seed): r.metrics_at_init.model_dump() for r in found}


@pytest.mark.slow
def test_each_starting_state_is_evaluated_once_and_every_run_gets_a_fresh_evaluations_metrics(tmp_path, monkeypatch):
    shared_evaluations = []
    original = train_module.evaluate

    def spy(encoders, objective, *args, **kwargs):
        if objective is None:  # the objective-independent evaluation that the sweep's runs share
            shared_evaluations.append(args)
        return original(encoders, objective, *args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate", spy)
    memoised = _at_init(tmp_path, "memo")
    assert len(shared_evaluations) == 2  # one per seed, for three objectives each

    monkeypatch.setattr(StartEvaluations, "key", lambda *args, **kwargs: None)  # every run evaluates its own
    fresh = _at_init(tmp_path, "fresh")
    assert len(shared_evaluations) == 2 + 6
    assert memoised == fresh
    assert "retrieval_native" in memoised[("gram", 0)] and "retrieval_native" not in memoised[("infonce", 0)]
    assert memoised[("infonce", 0)]["retrieval"] == memoised[("pmrl", 0)]["retrieval"]
    assert memoised[("infonce", 0)]["retrieval"] != memoised[("infonce", 1)]["retrieval"]


SPEC = RunSpec(task="t", task_params={"n": 1}, objective="infonce", objective_params={},
               encoders={"a": EncoderChoice("mlp", {"hidden": 4})}, budget=Budget(), seed=0)
CPU = torch.device("cpu")


def _state(value: float = 0.5) -> dict[str, torch.Tensor]:
    return {"a.weight": torch.full((2, 3), value), "a.bias": torch.zeros(2)}


@pytest.mark.parametrize("change", [
    lambda spec, state: (dataclasses.replace(spec, seed=1), state),
    lambda spec, state: (dataclasses.replace(spec, probe="sklearn"), state),
    lambda spec, state: (dataclasses.replace(spec, encoders={"a": EncoderChoice("mlp", {"hidden": 5})}), state),
    lambda spec, state: (dataclasses.replace(spec, task_params={"n": 2}), state),
    lambda spec, state: (spec, {**state, "a.bias": torch.tensor([0.0, 1e-6])}),
])
def test_the_key_changes_with_whatever_the_evaluation_depends_on(change):
    memo = StartEvaluations({"t": "abc"})
    key = memo.key(SPEC, _state(), "test", CPU)
    assert key == memo.key(SPEC, _state(), "test", CPU)
    assert memo.key(*change(SPEC, _state()), "test", CPU) != key
    assert memo.key(SPEC, _state(), "validation", CPU) != key
    assert StartEvaluations({"t": "abd"}).key(SPEC, _state(), "test", CPU) != key
    assert StartEvaluations({}).key(SPEC, _state(), "test", CPU) is None  # no fingerprint: never memoised


def test_each_run_gets_its_own_copy_and_the_memo_stays_bounded():
    memo = StartEvaluations({"t": "abc"}, capacity=1)
    calls = []

    def evaluate() -> dict:
        calls.append(1)
        return {"retrieval": {"a->b": {"R@1": 0.5}}}

    first = memo.metrics("k1", evaluate)
    first["retrieval_native"] = {}  # what a run adds to its copy
    first["retrieval"]["a->b"]["R@1"] = 0.0
    assert memo.metrics("k1", evaluate) == {"retrieval": {"a->b": {"R@1": 0.5}}} and len(calls) == 1
    memo.metrics("k2", evaluate)  # evicts k1
    memo.metrics("k1", evaluate)
    assert len(calls) == 3 and (memo.computed, memo.reused) == (3, 1)
    assert memo.metrics(None, evaluate) is not None and len(calls) == 4  # no key: evaluated, not stored
