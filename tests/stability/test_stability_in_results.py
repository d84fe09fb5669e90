"""Stability metrics land in every result file, and an injected NaN is counted there."""

from __future__ import annotations

import torch

from pmrl_bench import hookimpl
from pmrl_bench.components import ObjectiveOutput
from pmrl_bench.plugins import get_registry
from pmrl_bench.results import ResultStore
from pmrl_bench.runner.spec import Budget
from pmrl_bench.runner.executor import collect_versions
from pmrl_bench.runner.sweep import execute_sweep
from pmrl_bench.stability import default_monitors
from pmrl_bench.runner.sweep_plan import SweepConfig, plan_sweep

TINY_TASK = {("task", "synthetic"): {"n_train": "256", "n_test": "128"}}


class NanAtStep(torch.nn.Module):
    """Mean cosine to the first modality; at ``nan_step`` its loss (or only its gradient) turns NaN."""

    def __init__(self, nan_step: int = 7, where: str = "loss") -> None:
        super().__init__()
        self.nan_step, self.where, self.calls = nan_step, where, 0

    def forward(self, embeddings):
        self.calls += 1
        first, *others = embeddings.values()
        loss = sum(1 - (first * z).sum(-1).mean() for z in others)
        if self.calls == self.nan_step:
            if self.where == "loss":
                loss = loss * float("nan")
            else:  # sqrt at 0: the value is finite (0), the gradient is not
                loss = loss + (first - first.detach()).pow(2).sum().sqrt()
        return ObjectiveOutput(loss=loss, terms={})


class NanPlugin:
    @hookimpl
    def register_objectives(self, register):
        register("nan-at-step", NanAtStep)


def _sweep(tmp_path, objective, steps, overrides=None, probe_every=25):
    config = SweepConfig(
        objectives=[objective], tasks=["synthetic"], seeds=1,
        budget=Budget(steps=steps, batch_size=32, lr=3e-3, dim=16),
        overrides={**TINY_TASK, **(overrides or {})}, device="cpu", progress=False, probe_every=probe_every,
    )
    registry = get_registry()
    store = ResultStore(tmp_path / "results")
    summary = execute_sweep(plan_sweep(config, registry), config, registry, store, collect_versions({}),
                            default_monitors)
    return summary, store.scan()[0][0]


def test_every_result_records_every_stability_block_with_curves(tmp_path):
    summary, result = _sweep(tmp_path, "infonce", steps=20, probe_every=5)
    assert summary.ok == 1
    st = result.stability
    assert set(st) == {"optimisation", "singular", "representation", "probe_retrieval"}
    assert st["singular"]["curves"]["step"] == [0, 5, 10, 15, 20]
    assert len(st["singular"]["curves"]["sigma1_share"]) == 5
    assert st["optimisation"]["curves"]["step"] == [5, 10, 15, 20]
    assert all(g > 0 for g in st["optimisation"]["curves"]["grad_norm"])
    assert set(st["representation"]["positive_cosine"]) == {"m0|m1", "m0|m2", "m1|m2"}
    assert len(st["singular"]["sigma_mean"]) == 3 and 1 / 3 <= st["singular"]["sigma1_share"] <= 1
    assert st["probe_retrieval"]["probes"] == 5
    ranks = result.metrics.model_extra["per_query_ranks"]["retrieval"]
    assert set(ranks) == set(result.metrics.retrieval) and len(ranks["m0->m1"].split()) == 128


def test_injected_nan_loss_is_counted_and_the_run_is_diverged(tmp_path, fresh_manager):
    fresh_manager.register_plugin(NanPlugin(), name="nan-plugin")
    summary, result = _sweep(tmp_path, "nan-at-step", steps=20)
    assert summary.diverged == 1 and result.status == "diverged" and result.diverged_step == 7
    opt = result.stability["optimisation"]
    assert (opt["non_finite"], opt["non_finite_loss"], opt["non_finite_grad"]) == (1, 1, 0)
    assert opt["first_non_finite_step"] == 7 and opt["steps"] == 7


def test_injected_nan_gradient_is_counted_separately(tmp_path, fresh_manager):
    fresh_manager.register_plugin(NanPlugin(), name="nan-plugin")
    summary, result = _sweep(tmp_path, "nan-at-step", steps=20,
                             overrides={("objective", "nan-at-step"): {"where": "grad"}})
    opt = result.stability["optimisation"]
    assert result.status == "diverged"
    assert (opt["non_finite"], opt["non_finite_loss"], opt["non_finite_grad"]) == (1, 0, 1)
