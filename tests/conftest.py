"""Shared fixtures. Every test gets a fresh plugin manager that loads no installed third-party plugins,
so the suite behaves the same whatever is installed beside pmrl-bench."""

from __future__ import annotations

import pytest
import torch

from pmrl_bench import plugins


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tests run on tiny tensors, where torch's intra-op threads only contend (on a loaded 2-core machine a 5×6
    InfoNCE step took ~400 ms with two threads and ~1 ms with one). Results do not depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def fresh_manager(monkeypatch: pytest.MonkeyPatch) -> plugins.PluginManager:
    monkeypatch.setenv(plugins.ENV_LOAD_PLUGINS, "")
    monkeypatch.delenv(plugins.ENV_STRICT, raising=False)
    manager = plugins.PluginManager()
    monkeypatch.setattr(plugins, "MANAGER", manager)
    return manager
