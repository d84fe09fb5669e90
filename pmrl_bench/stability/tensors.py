"""The probe batch's embeddings as the stability monitors read them."""

from __future__ import annotations

import torch


def to_cpu64(embeddings: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Probe embeddings as float64 on the CPU, in sorted modality order (a fixed order for stacking)."""
    return {m: embeddings[m].detach().to("cpu", torch.float64) for m in sorted(embeddings)}


def all_finite(embeddings: dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(x).all()) for x in embeddings.values())
