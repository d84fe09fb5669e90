"""Compact, JSON-friendly numbers for the curves, spectra and costs stored in result files."""

from __future__ import annotations

import math
from collections.abc import Iterable

SIGNIFICANT_DIGITS = 4


def sig(value: float, digits: int = SIGNIFICANT_DIGITS) -> float | None:
    """``value`` rounded to a few significant digits (None when not finite: JSON has no NaN)."""
    value = float(value)
    if not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def sig_list(values: Iterable[float], digits: int = SIGNIFICANT_DIGITS) -> list[float | None]:
    return [sig(v, digits) for v in values]
