"""Range checks of the built-in encoders' parameters: a ValueError that says what is allowed (the runner reports
it as bad input before training)."""

from __future__ import annotations

import math
from typing import Any


def whole(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer >= ``minimum`` (not a bool, not a float such as 2.5 or nan), and <= ``maximum`` when given: a
    count of modules is built one Python object at a time, so a huge one would hang before any memory check."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be an integer between {minimum} and {maximum}, got {value!r}")
    return value


def fraction(name: str, value: Any) -> float:
    """A finite number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)
