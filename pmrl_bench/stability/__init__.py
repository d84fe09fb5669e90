"""Stability metrics recorded in every result file (see shared/reference/objectives.md §9)."""

from __future__ import annotations

from pmrl_bench.runner.monitor import TrainingMonitor
from pmrl_bench.stability.optimisation import OptimisationMonitor


def default_monitors() -> list[TrainingMonitor]:
    """The monitors every run gets (fresh instances per run)."""
    return [OptimisationMonitor()]
