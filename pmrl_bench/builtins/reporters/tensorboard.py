"""TensorBoard event files, one directory per run: ``RESULTS/_logs/tensorboard/<task>/<objective>/<config>-seed<N>/``.

``tensorboard --logdir RESULTS/_logs/tensorboard`` then shows every run, named by its task, objective,
configuration and seed. Training scalars are written at their step; the test metrics and the status at the
run's last step. Written with torch's ``SummaryWriter``, which needs the ``tensorboard`` package (the optional
extra ``log``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pmrl_bench.errors import UsageError
from pmrl_bench.tracking import Reporter, RunInfo, result_scalars
from pmrl_bench.results import RunResult


class TensorBoardReporter(Reporter):
    """One ``SummaryWriter`` per run, closed when the run ends."""

    def __init__(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UsageError("--log tensorboard needs the tensorboard package: pip install 'pmrl-bench[log]' "
                             "(or pip install tensorboard)") from None
        self._writer_class = SummaryWriter
        self.writer: Any = None
        self.last_step = 0

    def start_run(self, run: RunInfo) -> None:
        self.close()
        for old in run.log_dir.glob("events.out.tfevents.*"):  # a rerun replaces the run's curves, as its result
            old.unlink()
        self.writer = self._writer_class(log_dir=str(run.log_dir))
        self.last_step = run.steps
        self.writer.add_text("run/params", f"```json\n{json.dumps(run.params, indent=2, sort_keys=True)}\n```", 0)

    def log_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)

    def end_run(self, result: RunResult) -> None:
        step = result.diverged_step or self.last_step
        for tag, value in result_scalars(result).items():
            self.writer.add_scalar(tag, value, step)
        status = result.status + (f": {result.error}" if result.error else "")
        self.writer.add_text("run/status", status, step)
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
