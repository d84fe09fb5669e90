"""Shared bits of the scale tests: a tiny synthetic sweep configuration and spec builder."""

from __future__ import annotations

from pmrl_bench.plugins import get_registry
from pmrl_bench.runner.spec import Budget
from pmrl_bench.runner.sweep_plan import SweepConfig, plan_sweep

TINY_TASK = {("task", "synthetic"): {"n_train": "256", "n_test": "128"}}
TINY_FLAGS = ["--tasks", "synthetic", "--set", "task.synthetic.n_train=256", "--set", "task.synthetic.n_test=128",
              "--batch-size", "64", "--lr", "3e-3", "--dim", "16", "--device", "cpu", "--no-progress"]


def tiny_plan(objectives=("infonce",), seeds=1, steps=20, **config):
    cfg = SweepConfig(objectives=list(objectives), tasks=["synthetic"], seeds=seeds,
                      budget=Budget(steps=steps, batch_size=64, lr=3e-3, dim=16),
                      overrides=dict(TINY_TASK), device="cpu", progress=False, **config)
    registry = get_registry()
    return plan_sweep(cfg, registry), cfg, registry
