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


def page_without_commands(markdown: str) -> list[str]:
    """A page's lines without its command lines and cost tables (wall-clock step times and memory differ between
    any two executions of the same runs; every other number must not)."""
    lines, in_cost = [], False
    for line in markdown.splitlines():
        if line.startswith("#"):
            in_cost = line.startswith("### Cost")
        if not in_cost and not line.startswith("- Command:"):
            lines.append(line)
    return lines
