"""Base class of the monitors that read the probe batch: one place that skips probes they cannot use."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from pmrl_bench.runner.monitor import TrainingMonitor
from pmrl_bench.stability.tensors import all_finite


class ProbeMonitor(TrainingMonitor):
    """Calls :meth:`observe` with probe embeddings of at least two modalities that are all finite; a probe with a
    NaN or inf is counted in ``non_finite_probes`` instead (a diverging run must not crash its own diagnostics)."""

    def __init__(self) -> None:
        self.non_finite_probes = 0

    def on_probe(self, step: int, embeddings: Mapping[str, torch.Tensor]) -> None:
        if len(embeddings) < 2:
            return
        if not all_finite(dict(embeddings)):
            self.non_finite_probes += 1
            return
        self.observe(step, embeddings)

    def observe(self, step: int, embeddings: Mapping[str, torch.Tensor]) -> None:
        """Record one usable probe."""
