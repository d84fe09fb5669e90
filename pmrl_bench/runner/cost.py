"""What training a run costs, recorded in every result as ``RunResult.cost``.

- ``params``: trainable parameters of the encoders (all modalities together) and of the objective (temperatures,
  scales); ``params_by_part`` counts the two separately.
- ``ms_per_step``: the median, over the intervals between the loop's flushes, of the interval's wall time divided by its
  steps. An interval starts after the previous flush's probes and ends right after the flush's existing host sync
  (the copy of the buffered losses), so it holds the batches' forward, backward and optimiser steps and no
  monitoring; nothing adds a sync. The first interval carries the warm-up (allocations, kernel selection) and is
  left out when there are others. ``timed_steps``: the steps the median is over.
- ``peak_memory_bytes`` and ``memory``: on CUDA, ``torch.cuda.max_memory_allocated`` over training (tensors torch
  allocated on the device, probes included; not the allocator's cache or other processes); on CPU, the process's
  resident set size (psutil), sampled at the start of training and at every flush: the whole process, i.e. the
  interpreter, libraries, every task's data and the models, not this run's tensors alone.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from torch import nn

from pmrl_bench.rounding import sig


def trainable_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class CostMeter:
    """Parameter counts, step times at the flushes, and peak memory of one training run."""

    def __init__(self, encoders: nn.Module, objective: nn.Module, device: torch.device) -> None:
        self.params = {"encoders": trainable_parameters(encoders), "objective": trainable_parameters(objective)}
        self.device = device
        self.intervals: list[tuple[float, int]] = []  # (milliseconds per step, steps)
        self._started: float | None = None
        self._rss_peak: int | None = None
        self._process = None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        else:
            try:
                import psutil

                self._process = psutil.Process()
            except ImportError:  # a core dependency; without it the run still trains, without a memory figure
                pass
        self.sample_memory()

    def start_interval(self) -> None:
        self._started = time.perf_counter()

    def end_interval(self, steps: int) -> None:
        """Call right after a host sync that waited for the interval's ``steps`` steps."""
        if self._started is not None and steps > 0:
            self.intervals.append(((time.perf_counter() - self._started) * 1000 / steps, steps))
        self._started = None
        self.sample_memory()

    def sample_memory(self) -> None:
        if self._process is not None:
            rss = self._process.memory_info().rss
            self._rss_peak = rss if self._rss_peak is None else max(self._rss_peak, rss)

    def summary(self) -> dict[str, Any]:
        if self.device.type == "cuda":
            peak, memory = torch.cuda.max_memory_allocated(self.device), "cuda_max_allocated"
        elif self._rss_peak is not None:
            peak, memory = self._rss_peak, "process_rss"
        else:
            peak, memory = None, "unavailable (psutil not installed)"
        timed = self.intervals[1:] if len(self.intervals) >= 2 else self.intervals
        return {
            "params": sum(self.params.values()),
            "params_by_part": dict(self.params),
            "ms_per_step": sig(statistics.median(ms for ms, _ in timed)) if timed else None,
            "timed_steps": sum(steps for _, steps in timed),
            "peak_memory_bytes": int(peak) if peak is not None else None,
            "memory": memory,
        }
