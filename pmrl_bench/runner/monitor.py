"""Training monitors: observers of a run whose summaries fill the result file's ``stability`` block.

The training loop hands monitors every step (as a :class:`StepRecord`, at the flush cadence: buffered steps arrive
in order once per probe interval) and the embeddings of a fixed validation probe batch. Anything that wants to
follow training without growing the loop is a monitor: the stability metrics, and the forwarder that feeds
experiment-tracking reporters (``pmrl_bench.tracking``), whose ``summary()`` is None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class StepRecord:
    """One optimiser step as the monitors see it (host floats)."""

    step: int
    loss: float
    terms: dict[str, float]
    grad_norm: float  # total norm before clipping
    clipped: bool
    finite: bool


@dataclass
class TrainContext:
    steps: int
    modalities: list[str]
    objective: torch.nn.Module
    extra: dict[str, Any] = field(default_factory=dict)


class TrainingMonitor:
    """Base class: override what you need. ``summary()`` lands in ``stability[self.name]``."""

    name = "monitor"

    def on_train_start(self, context: TrainContext) -> None:
        """Called once before the first step."""

    def on_step(self, record: StepRecord) -> None:
        """Called after every step (after the finiteness check, before the optimiser update)."""

    def on_probe(self, step: int, embeddings: Mapping[str, torch.Tensor]) -> None:
        """Called every ``probe_every`` steps and at the end, with embeddings of a fixed probe batch."""

    def summary(self) -> dict[str, Any] | None:
        """What lands in ``stability[self.name]``; None adds nothing to the result file."""
        return {}
