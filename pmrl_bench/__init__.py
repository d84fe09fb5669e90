"""pmrl-bench: train and compare multimodal alignment objectives under one protocol.

Public API (see CONTRACT.md): ``hookimpl`` for plugins, and ``create_objective``, ``create_encoder``,
``create_task`` to build any registered component by name.
"""

from __future__ import annotations

from typing import Any

from pmrl_bench.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "create_encoder", "create_objective", "create_task", "hookimpl"]


def create_objective(name: str, **params: Any) -> Any:
    """Build a registered objective, e.g. ``create_objective("pmrl", tau1=0.05)``."""
    from pmrl_bench.plugins import get_registry

    return get_registry().get("objective", name).create(**params)


def create_encoder(name: str, **params: Any) -> Any:
    """Build a registered encoder; pass ``modality=`` (a :class:`~pmrl_bench.components.Modality`) and ``dim=``."""
    from pmrl_bench.plugins import get_registry

    return get_registry().get("encoder", name).create(**params)


def create_task(name: str, **params: Any) -> Any:
    """Build a registered task; call ``.load()`` on it for its data."""
    from pmrl_bench.plugins import get_registry

    return get_registry().get("task", name).create(**params)
