"""Optimisation health: gradient norms, clipping, non-finite values, loss spikes, the loss and its terms, and
scalar-parameter trajectories."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from pmrl_bench.runner.monitor import StepRecord, TrainContext, TrainingMonitor
from pmrl_bench.rounding import sig, sig_list


def loss_spikes(losses: np.ndarray, window: int, mads: float) -> int:
    """Steps whose loss exceeds the median of the previous ``window`` losses by more than ``mads`` MADs."""
    if len(losses) <= window:
        return 0
    windows = np.lib.stride_tricks.sliding_window_view(losses[:-1], window)  # windows[i] precedes losses[i + window]
    median = np.median(windows, axis=1)
    mad = np.median(np.abs(windows - median[:, None]), axis=1)
    later = losses[window:]
    return int(((mad > 0) & (later > median + mads * mad)).sum())


class OptimisationMonitor(TrainingMonitor):
    """Gradient-norm statistics before clipping, clipped fraction, non-finite counts, loss spikes.

    The objective's loss terms (``ObjectiveOutput.terms``) are summarised like the loss: ``terms_final`` holds each
    term's value at the last finite step. Curves: the mean gradient norm, loss and each term (``term:NAME``) over
    each interval between probes (None where a term was not reported in an interval), and the value of every scalar
    parameter of the objective (learnable temperatures, logit scales) at each probe. The terms arrive with the
    step records the runner already hands over at each flush, so recording them costs no device work.
    """

    name = "optimisation"

    def __init__(self, spike_window: int = 50, spike_mads: float = 5.0) -> None:
        self.spike_window = spike_window
        self.spike_mads = spike_mads
        self.losses: list[float] = []
        self.grad_norms: list[float] = []
        self.clipped = 0
        self.non_finite_loss = 0
        self.non_finite_grad = 0
        self.first_non_finite_step: int | None = None
        self.scalars: dict[str, torch.nn.Parameter] = {}
        self.curve_steps: list[int] = []
        self.curve_grad: list[float] = []
        self.curve_loss: list[float] = []
        self.curve_scalars: dict[str, list[float]] = {}
        self.terms_final: dict[str, float] = {}
        self.curve_terms: dict[str, list[float | None]] = {}
        self._interval_terms: dict[str, list[float]] = {}
        self._window_start = 0  # index into grad_norms where the current probe interval starts

    def on_train_start(self, context: TrainContext) -> None:
        self.scalars = {n: p for n, p in context.objective.named_parameters() if p.numel() == 1}

    def on_step(self, record: StepRecord) -> None:
        if not record.finite:
            if not math.isfinite(record.loss):
                self.non_finite_loss += 1
            else:
                self.non_finite_grad += 1
            if self.first_non_finite_step is None:
                self.first_non_finite_step = record.step
            return
        self.losses.append(record.loss)
        self.grad_norms.append(record.grad_norm)
        self.clipped += int(record.clipped)
        for name, value in record.terms.items():
            self.terms_final[name] = value
            self._interval_terms.setdefault(name, []).append(value)

    def on_probe(self, step: int, embeddings: Mapping[str, torch.Tensor]) -> None:
        window = slice(self._window_start, len(self.grad_norms))
        self._window_start = len(self.grad_norms)
        if step == 0 or window.start == window.stop:
            return
        self.curve_steps.append(step)
        self.curve_grad.append(float(np.mean(self.grad_norms[window])))
        self.curve_loss.append(float(np.mean(self.losses[window])))
        for name in self._interval_terms.keys() - self.curve_terms.keys():  # a term first reported in this interval
            self.curve_terms[name] = [None] * (len(self.curve_steps) - 1)
        for name, curve in self.curve_terms.items():
            values = self._interval_terms.get(name)
            curve.append(float(np.mean(values)) if values else None)
        self._interval_terms = {}
        for name, param in self.scalars.items():
            self.curve_scalars.setdefault(name, []).append(float(param.detach().float().cpu()))

    @property
    def non_finite(self) -> int:
        return self.non_finite_loss + self.non_finite_grad

    def summary(self) -> dict[str, Any]:
        g = np.asarray(self.grad_norms, dtype=np.float64)
        stats: dict[str, Any] = {
            "steps": len(g) + self.non_finite,
            "non_finite": self.non_finite,
            "non_finite_loss": self.non_finite_loss,
            "non_finite_grad": self.non_finite_grad,
            "first_non_finite_step": self.first_non_finite_step,
        }
        if len(g):
            mean, median = float(g.mean()), float(np.median(g))
            stats.update(
                grad_norm_mean=sig(mean, 6),
                grad_norm_std=sig(float(g.std()), 6),
                grad_norm_cv=sig(float(g.std() / mean), 6) if mean > 0 else None,
                grad_norm_median=sig(median, 6),
                grad_norm_max=sig(float(g.max()), 6),
                grad_norm_max_over_median=sig(float(g.max() / median), 6) if median > 0 else None,
                clipped_fraction=sig(self.clipped / len(g), 6),
                loss_first=sig(self.losses[0], 6),
                loss_final=sig(self.losses[-1], 6),
                loss_spikes=loss_spikes(np.asarray(self.losses), self.spike_window, self.spike_mads),
            )
        stats["terms_final"] = {name: sig(value, 6) for name, value in sorted(self.terms_final.items())}
        stats["curves"] = {
            "step": list(self.curve_steps),
            "grad_norm": sig_list(self.curve_grad),
            "loss": sig_list(self.curve_loss),
            **{f"term:{name}": [None if v is None else sig(v) for v in curve]
               for name, curve in sorted(self.curve_terms.items())},
            **{f"param:{name}": sig_list(v) for name, v in sorted(self.curve_scalars.items())},
        }
        return stats
