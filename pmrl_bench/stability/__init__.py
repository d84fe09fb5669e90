"""Stability metrics recorded in every result file (see docs/objectives.md#stability-metrics).

Each monitor's ``summary()`` lands in ``result.stability[monitor.name]``:

- ``optimisation``: gradient norm before clipping, clipped fraction, non-finite counts, loss spikes, curves.
- ``singular``: the singular-value view of each instance's stack on the probe batch (sigma1 share, gap,
  condition number of G, leading-vector sign flips), with curves.
- ``representation``: effective rank, spectrum, uniformity per modality; signed positive cosine, alignment
  and modality gap per pair.
- ``probe_retrieval``: R@1 on the probe batch per check and its peak-to-final drop.
"""

from __future__ import annotations

from pmrl_bench.runner.monitor import TrainingMonitor
from pmrl_bench.stability.optimisation import OptimisationMonitor
from pmrl_bench.stability.probe_retrieval import ProbeRetrievalMonitor
from pmrl_bench.stability.representation import RepresentationMonitor
from pmrl_bench.stability.singular import SingularValueMonitor

__all__ = [
    "OptimisationMonitor", "ProbeRetrievalMonitor", "RepresentationMonitor", "SingularValueMonitor", "default_monitors",
]


def default_monitors() -> list[TrainingMonitor]:
    """The monitors every run gets (fresh instances per run)."""
    return [OptimisationMonitor(), SingularValueMonitor(), RepresentationMonitor(), ProbeRetrievalMonitor()]
