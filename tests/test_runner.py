"""The runner on the synthetic task: it learns, it is deterministic, it records what it did."""

from __future__ import annotations

import json

import pytest

from pmrl_bench.plugins import get_registry
from pmrl_bench.results import ResultStore
from pmrl_bench.runner.spec import Budget
from pmrl_bench.runner.executor import collect_versions
from pmrl_bench.runner.sweep import execute_sweep
from pmrl_bench.stability import default_monitors
from pmrl_bench.runner.sweep_plan import SweepConfig, plan_sweep

TINY_TASK = {("task", "synthetic"): {"n_train": "256", "n_test": "128"}}


def _sweep(tmp_path, objectives=("infonce",), seeds=1, steps=60, **kwargs):
    config = SweepConfig(
        objectives=list(objectives), tasks=["synthetic"], seeds=seeds,
        budget=Budget(steps=steps, batch_size=64, lr=3e-3, dim=32),
        overrides=dict(TINY_TASK), device="cpu", progress=False, **kwargs,
    )
    registry = get_registry()
    plan = plan_sweep(config, registry)
    store = ResultStore(tmp_path / "results")
    summary = execute_sweep(plan, config, registry, store, collect_versions({}), default_monitors)
    return plan, store, summary


def test_training_beats_chance_and_result_file_is_complete(tmp_path):
    plan, store, summary = _sweep(tmp_path, objectives=("infonce", "pmrl"))
    assert (summary.ok, summary.failed, summary.diverged) == (2, 0, 0)
    results, problems = store.scan()
    assert not problems and len(results) == 2
    infonce = next(r for r in results if r.objective == "infonce")
    chance = 1 / 128
    r1 = [scores["R@1"] for scores in infonce.metrics.retrieval.values()]
    assert len(r1) == 6 and min(r1) > 10 * chance
    assert set(infonce.metrics.classification) == {
        f"{probe}:{view}" for probe in ("linear", "knn") for view in ("m0", "m1", "m2", "fused")
    }
    assert infonce.params["budget"]["steps"] == 60 and infonce.params["task"]["n_train"] == 256
    assert infonce.versions["torch"] and infonce.status == "ok"
    assert infonce.stability["optimisation"]["steps"] == 60
    raw = json.loads(store.path_for("synthetic", "infonce", infonce.config_id, 0).read_text())
    for key in ("schema_version", "task", "objective", "params", "seed", "status", "metrics", "stability", "versions"):
        assert key in raw


def test_same_seed_same_result_different_seed_different_result(tmp_path):
    _, store_a, _ = _sweep(tmp_path / "a", seeds=2, steps=30)
    _, store_b, _ = _sweep(tmp_path / "b", seeds=2, steps=30)
    a = {r.seed: r.metrics.retrieval for r in store_a.scan()[0]}
    b = {r.seed: r.metrics.retrieval for r in store_b.scan()[0]}
    assert a[0] == b[0] and a[1] == b[1]
    assert a[0] != a[1]


def test_existing_results_are_skipped_unless_rerun(tmp_path):
    _sweep(tmp_path, steps=10)
    _, _, again = _sweep(tmp_path, steps=10)
    assert (again.skipped, again.ok) == (1, 0)
    _, _, forced = _sweep(tmp_path, steps=10, rerun=True)
    assert (forced.skipped, forced.ok) == (1 - 1, 1)


def test_objective_exception_fails_only_its_run(tmp_path, fresh_manager):
    from pmrl_bench import hookimpl

    class Exploding:
        @hookimpl
        def register_objectives(self, register):
            register("exploding", _exploding)

    fresh_manager.register_plugin(Exploding(), name="exploding-plugin")
    _, store, summary = _sweep(tmp_path, objectives=("exploding", "infonce"), steps=5)
    assert (summary.ok, summary.failed) == (1, 1)
    failed = next(r for r in store.scan()[0] if r.objective == "exploding")
    assert failed.status == "failed" and "RuntimeError: kaboom" in failed.error
    # versions name only the plugins whose components a run used
    assert failed.versions["plugins"] == {"exploding-plugin": None}
    assert next(r for r in store.scan()[0] if r.objective == "infonce").versions["plugins"] == {}


def _exploding():
    import torch

    class Exploding(torch.nn.Module):
        def forward(self, embeddings):
            raise RuntimeError("kaboom")

    return Exploding()


def test_budget_larger_than_the_data_is_rejected(tmp_path):
    from pmrl_bench.errors import UsageError

    config = SweepConfig(objectives=["pmrl"], tasks=["synthetic"], seeds=1,
                         budget=Budget(batch_size=1000), overrides=dict(TINY_TASK))
    with pytest.raises(UsageError, match="exceeds the 217 training instances"):
        plan_sweep(config, get_registry())


def test_a_result_records_the_task_data_card_it_trained_on(tmp_path):
    from pmrl_bench.plugins import get_registry
    from pmrl_bench.testing import run_one_step

    result = run_one_step(get_registry(), tmp_path, objective="infonce", task="synthetic",
                          task_params={"n_train": 160, "n_test": 100}, steps=2, batch_size=32, dim=8)
    card = result.data_card
    assert card["name"] and card["licence"] and card["citation"]
    assert card["splits"] == {"train": result.splits.train, "val": result.splits.val, "test": result.splits.test}
    assert [m["name"] for m in card["modalities"]] == sorted(result.params["encoders"])
