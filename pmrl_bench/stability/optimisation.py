"""Optimisation health: gradient norms, clipping, non-finite values, loss spikes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pmrl_bench.runner.monitor import StepRecord, TrainingMonitor


class OptimisationMonitor(TrainingMonitor):
    """Gradient-norm statistics before clipping, clipped fraction, non-finite count and loss spikes."""

    name = "optimisation"

    def __init__(self, spike_window: int = 50, spike_mads: float = 5.0) -> None:
        self.spike_window = spike_window
        self.spike_mads = spike_mads
        self.losses: list[float] = []
        self.grad_norms: list[float] = []
        self.clipped = 0
        self.non_finite = 0

    def on_step(self, record: StepRecord) -> None:
        if not record.finite:
            self.non_finite += 1
            return
        self.losses.append(record.loss)
        self.grad_norms.append(record.grad_norm)
        self.clipped += int(record.clipped)

    def _loss_spikes(self) -> int:
        losses = np.asarray(self.losses)
        spikes = 0
        for t in range(self.spike_window, len(losses)):
            window = losses[t - self.spike_window : t]
            median = np.median(window)
            mad = np.median(np.abs(window - median))
            if mad > 0 and losses[t] > median + self.spike_mads * mad:
                spikes += 1
        return spikes

    def summary(self) -> dict[str, Any]:
        g = np.asarray(self.grad_norms, dtype=np.float64)
        steps = len(g) + self.non_finite
        stats: dict[str, Any] = {"steps": steps, "non_finite": self.non_finite}
        if len(g):
            mean = float(g.mean())
            median = float(np.median(g))
            stats.update(
                grad_norm_mean=mean,
                grad_norm_cv=float(g.std() / mean) if mean > 0 else math.nan,
                grad_norm_max_over_median=float(g.max() / median) if median > 0 else math.nan,
                clipped_fraction=self.clipped / len(g),
                loss_first=self.losses[0],
                loss_final=self.losses[-1],
                loss_spikes=self._loss_spikes(),
            )
        return stats
