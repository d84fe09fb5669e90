"""Compact, JSON-friendly numbers for curves and spectra stored in result files."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

SIGNIFICANT_DIGITS = 4


def sig(value: float, digits: int = SIGNIFICANT_DIGITS) -> float | None:
    """``value`` rounded to a few significant digits (None when not finite: JSON has no NaN)."""
    value = float(value)
    if not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def sig_list(values: Iterable[float], digits: int = SIGNIFICANT_DIGITS) -> list[float | None]:
    return [sig(v, digits) for v in values]


def to_cpu64(embeddings: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Probe embeddings as float64 on the CPU, in sorted modality order (a fixed order for stacking)."""
    return {m: embeddings[m].detach().to("cpu", torch.float64) for m in sorted(embeddings)}


def all_finite(embeddings: dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(x).all()) for x in embeddings.values())
