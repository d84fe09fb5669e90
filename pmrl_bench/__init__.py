"""pmrl-bench: train and compare multimodal alignment objectives under one protocol.

Public API: ``hookimpl`` for plugins; ``create_objective``, ``create_encoder`` and ``create_task`` to build any
registered component by name. docs/plugins.md describes the plugin hooks and the objective call. ``load_results``
reads result files into a pandas DataFrame (docs/api.md).
"""

from __future__ import annotations

import os
from typing import Any

from pmrl_bench._version import __version__
from pmrl_bench.hookspecs import hookimpl

__all__ = ["__version__", "create_encoder", "create_objective", "create_task", "hookimpl", "load_results"]


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


def load_results(path: str | os.PathLike[str] = "results", long: bool = False, skip_invalid: bool = False) -> Any:
    """The result files under ``path`` as a pandas DataFrame: one row per run, or with ``long=True`` one row per
    (run, retrieval view, direction). Columns: :mod:`pmrl_bench.analysis`; an invalid file is a
    :class:`~pmrl_bench.errors.UsageError` naming it (``skip_invalid=True`` warns and skips it)."""
    from pmrl_bench.analysis import load_results as load

    return load(path, long=long, skip_invalid=skip_invalid)
