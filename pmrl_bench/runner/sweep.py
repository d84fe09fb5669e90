"""A sweep, in two steps: plan it (``runner.plan``: every input checked before anything trains), then execute it
(``runner.execute``: claim, train, evaluate and store each run). This module gathers both for callers."""

from pmrl_bench.runner.execute import ResultWriteError, SweepSummary, collect_versions, execute_sweep
from pmrl_bench.runner.plan import SweepConfig, SweepPlan, plan_sweep

__all__ = ["ResultWriteError", "SweepConfig", "SweepPlan", "SweepSummary", "collect_versions", "execute_sweep",
           "plan_sweep"]
