"""The fixtures of the pytest plugin, each isolated per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pmrl_bench import plugins as _plugins
from pmrl_bench.components import TaskData
from pmrl_bench.testing.helpers import TinyTask, default_encoders, ensure_helpers

if TYPE_CHECKING:
    from torch import nn


@pytest.fixture


def pmrl_plugin_manager(monkeypatch: pytest.MonkeyPatch) -> _plugins.PluginManager:
    """A fresh manager with the built-ins and the helper components, set as ``pmrl_bench.plugins.MANAGER``."""
    monkeypatch.setenv(_plugins.ENV_LOAD_PLUGINS, "")  # installed plugins do not leak into the test
    monkeypatch.setenv(_plugins.ENV_STRICT, "1")  # a plugin that fails to register fails the test, never skipped
    manager = _plugins.PluginManager()
    monkeypatch.setattr(_plugins, "MANAGER", manager)
    ensure_helpers(manager)
    return manager


@pytest.fixture


def pmrl_register_plugin(pmrl_plugin_manager: _plugins.PluginManager) -> Iterator[Callable[..., str]]:
    """``register(plugin, name=None) -> name``: register an in-process plugin for this test only."""
    names: list[str] = []

    def register(plugin: Any, name: str | None = None) -> str:
        names.append(pmrl_plugin_manager.register_plugin(plugin, name))
        return names[-1]

    yield register
    for name in reversed(names):
        if pmrl_plugin_manager.pm.has_plugin(name):
            pmrl_plugin_manager.unregister_plugin(name)


@pytest.fixture


def pmrl_tiny_task() -> TaskData:
    """Three vector modalities m0, m1, m2 (8 features each), 64 train and 32 test instances, 4 classes."""
    return TinyTask().load()


@pytest.fixture


def pmrl_default_encoders(pmrl_plugin_manager: _plugins.PluginManager, pmrl_tiny_task: TaskData) -> nn.ModuleDict:
    """The registered default encoder of each modality of ``pmrl_tiny_task``, output dimension 16, seed 0."""
    return default_encoders(pmrl_plugin_manager.registry, pmrl_tiny_task, dim=16, seed=0)

