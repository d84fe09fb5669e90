"""Shared fixtures. Every test gets a fresh plugin manager that loads no installed third-party plugins,
so the suite behaves the same whatever is installed beside pmrl-bench."""

from __future__ import annotations

import pytest

from pmrl_bench import plugins


@pytest.fixture(autouse=True)
def fresh_manager(monkeypatch: pytest.MonkeyPatch) -> plugins.PluginManager:
    monkeypatch.setenv(plugins.ENV_LOAD_PLUGINS, "")
    monkeypatch.delenv(plugins.ENV_STRICT, raising=False)
    manager = plugins.PluginManager()
    monkeypatch.setattr(plugins, "MANAGER", manager)
    return manager
