"""Parsing ``--set kind.NAME.KEY=VALUE`` overrides and coercing values to each parameter's type.

Numbers must be finite (``inf`` and ``nan`` would train something no result file can say) unless the parameter
declares it takes them: its default is non-finite, or its component was registered with
``non_finite=("key", ...)``. Integers must fit in 64 bits.
"""

from __future__ import annotations

import inspect
import json
import math
from typing import Any

from pmrl_bench.errors import UsageError
from pmrl_bench.registry import KINDS, Component

Overrides = dict[tuple[str, str], dict[str, Any]]  # (kind, component name) -> {key: raw string}

NON_FINITE_METADATA = "non_finite"  # registration metadata: the parameters that accept inf and nan
INT_RANGE = (-(2**63), 2**63 - 1)
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_set_options(options: list[str]) -> Overrides:
    """``["objective.pmrl.tau1=0.05"]`` -> ``{("objective", "pmrl"): {"tau1": "0.05"}}`` (values still raw)."""
    overrides: Overrides = {}
    for option in options:
        target, sep, value = option.partition("=")
        parts = target.split(".")
        if not sep or len(parts) != 3 or not all(parts):
            raise UsageError(f"--set {option!r} is not KIND.NAME.KEY=VALUE (e.g. objective.pmrl.tau1=0.05)")
        kind, name, key = parts
        if kind not in KINDS:
            raise UsageError(f"--set {option!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        overrides.setdefault((kind, name), {})[key] = value
    return overrides


def _literal(raw: str) -> Any:
    """A value without a declared type: JSON if it parses (numbers, true/false, null, lists), else the string."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def accepts_non_finite(component: Component, key: str) -> bool:
    """Whether ``key`` of ``component`` declares that it takes inf and nan (see the module docstring)."""
    if key in component.metadata.get(NON_FINITE_METADATA, ()):
        return True
    parameter = component.parameters().get(key)
    default = parameter.default if parameter is not None else None
    return isinstance(default, float) and not math.isfinite(default)


def _numbers_ok(value: Any) -> bool:
    """Every number in ``value`` (a JSON value) finite and every integer within 64 bits."""
    if isinstance(value, bool):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int):
        return INT_RANGE[0] <= value <= INT_RANGE[1]
    if isinstance(value, list):
        return all(_numbers_ok(v) for v in value)
    if isinstance(value, dict):
        return all(_numbers_ok(v) for v in value.values())
    return True


def coerce(component: Component, key: str, raw: str, option: str | None = None) -> Any:
    """Convert ``raw`` to the type of the parameter's default (or annotation); a mismatch is a usage error.

    ``option`` is how the value was given, for the message (default ``--set KIND.NAME.KEY=VALUE``).
    """
    parameter = component.parameters().get(key)
    default = parameter.default if parameter is not None else inspect.Parameter.empty
    annotation = parameter.annotation if parameter is not None else inspect.Parameter.empty
    target = type(default) if default not in (inspect.Parameter.empty, None) else None
    if target is None and isinstance(annotation, type):
        target = annotation
    if target is None and isinstance(annotation, str):
        target = {"int": int, "float": float, "bool": bool, "str": str}.get(annotation)
    where = option or f"--set {component.kind}.{component.name}.{key}={raw}"
    if target is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise UsageError(f"{where}: expected true or false")
    if target in (int, float):
        try:
            value = target(raw) if target is float else int(raw, 10)
        except ValueError:
            raise UsageError(f"{where}: expected {'an integer' if target is int else 'a number'}") from None
    elif target is str:
        return raw
    else:
        value = _literal(raw)
    if _numbers_ok(value) or (isinstance(value, float) and accepts_non_finite(component, key)):
        return value
    if isinstance(value, int):
        raise UsageError(f"{where}: expected an integer within 64 bits")
    what = "a finite number" if isinstance(value, float) else "finite numbers and integers within 64 bits"
    raise UsageError(f"{where}: expected {what} ({component.kind} {component.name!r} does not declare that {key} "
                     "takes inf or nan)")
