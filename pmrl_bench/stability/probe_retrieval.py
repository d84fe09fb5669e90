"""Cosine retrieval on the probe batch at every check: the drop from the best R@1 to the final one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from pmrl_bench.evaluation.retrieval import mean_r1
from pmrl_bench.rounding import sig, sig_list
from pmrl_bench.stability.probe import ProbeMonitor


class ProbeRetrievalMonitor(ProbeMonitor):
    """Mean R@1 over every direction on the probe batch per check; peak, final and peak-to-final drop.

    The probe is a fixed slice of the test split, so this curve is a training diagnostic (did retrieval get
    better and then worse?), not a second test score.
    """

    name = "probe_retrieval"

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int] = []
        self.r1: list[float] = []

    def observe(self, step: int, embeddings: Mapping[str, torch.Tensor]) -> None:
        self.steps.append(step)
        self.r1.append(mean_r1(embeddings))

    def summary(self) -> dict[str, Any]:
        if not self.r1:
            return {"probes": 0, "non_finite_probes": self.non_finite_probes}
        best = int(np.argmax(self.r1))
        return {
            "probes": len(self.r1),
            "non_finite_probes": self.non_finite_probes,
            "r1_peak": sig(self.r1[best], 6),
            "r1_peak_step": self.steps[best],
            "r1_final": sig(self.r1[-1], 6),
            "r1_peak_to_final_drop": sig(self.r1[best] - self.r1[-1], 6),
            "curves": {"step": list(self.steps), "r1": sig_list(self.r1)},
        }
