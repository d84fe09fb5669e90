"""Parsing ``--set kind.NAME.KEY=VALUE`` overrides and coercing values to each parameter's type."""

from __future__ import annotations

import inspect
import json
from typing import Any

from pmrl_bench.errors import UsageError
from pmrl_bench.registry import KINDS, Component

Overrides = dict[tuple[str, str], dict[str, Any]]  # (kind, component name) -> {key: raw string}

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
            return target(raw) if target is float else int(raw, 10)
        except ValueError:
            raise UsageError(f"{where}: expected {'an integer' if target is int else 'a number'}") from None
    if target is str:
        return raw
    return _literal(raw)
