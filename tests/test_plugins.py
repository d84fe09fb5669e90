"""The plugin manager: built-ins through the hooks, entry-point discovery, isolation of broken plugins."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

import pmrl_bench
from pmrl_bench import hookimpl, plugins
from pmrl_bench.errors import PluginError, UnknownNameError


class _ObjectivePlugin:
    @hookimpl
    def register_objectives(self, register):
        register("toy", _toy_objective_factory, description="a toy objective")


def _toy_objective_factory(scale: float = 1.0):
    from pmrl_bench.builtins.objectives.infonce import PairwiseInfoNCE

    return PairwiseInfoNCE(temperature=0.1 * scale)


def test_builtins_register_through_the_hooks_with_provenance(fresh_manager):
    registry = fresh_manager.registry
    pmrl = registry.get("objective", "pmrl")
    assert pmrl.plugin == "pmrl_bench.builtins.objectives"
    assert pmrl.distribution == "pmrl-bench"
    assert {"pmrl", "infonce"} <= set(registry.names("objective"))
    assert registry.default_tasks()  # at least one task is in the default suite
    assert all(info.builtin for info in fresh_manager.plugins())


def test_lazy_factories_resolve_and_expose_parameters(fresh_manager):
    pmrl = fresh_manager.registry.get("objective", "pmrl")
    # the contract's parameters with the official defaults, then the faithful defaults of the options
    assert pmrl.defaults() == {"tau1": 0.05, "tau2": 0.1, "sign_fix": False, "grad_guard": 0.0}


def test_in_process_plugin_adds_an_objective(fresh_manager):
    fresh_manager.register_plugin(_ObjectivePlugin(), name="toy-plugin")
    component = fresh_manager.registry.get("objective", "toy")
    assert component.plugin == "toy-plugin"
    objective = pmrl_bench.create_objective("toy", scale=2.0)
    assert float(objective.log_scale.detach().exp()) == pytest.approx(5.0)


def test_unknown_name_lists_available_and_suggests(fresh_manager):
    with pytest.raises(UnknownNameError) as info:
        fresh_manager.registry.get("objective", "pmr")
    message = str(info.value)
    assert "did you mean 'pmrl'" in message and "infonce" in message


def test_unknown_parameter_is_a_usage_error(fresh_manager):
    with pytest.raises(UnknownNameError, match="tau3"):
        pmrl_bench.create_objective("pmrl", tau3=1.0)


def test_duplicate_registration_names_both_plugins(fresh_manager):
    class Clash:
        @hookimpl
        def register_objectives(self, register):
            register("pmrl", _toy_objective_factory)

    fresh_manager.register_plugin(Clash(), name="clash-plugin")
    registry = fresh_manager.registry  # a clash is not fatal to the registry: only using the name is an error
    assert "pmrl" not in registry.names("objective") and "infonce" in registry.names("objective")
    with pytest.raises(PluginError) as info:
        registry.get("objective", "pmrl")
    assert "pmrl_bench.builtins.objectives" in str(info.value) and "clash-plugin" in str(info.value)
    assert [f.stage for f in fresh_manager.failures] == ["clash"]


def test_plugin_raising_while_registering_is_skipped(fresh_manager):
    class Broken:
        @hookimpl
        def register_objectives(self, register):
            register("half-registered", _toy_objective_factory)
            raise RuntimeError("boom")

    fresh_manager.register_plugin(Broken(), name="broken-plugin")
    registry = fresh_manager.registry
    assert "half-registered" not in registry.names("objective")  # nothing of a failed call is kept
    assert "pmrl" in registry.names("objective")
    assert [f.plugin for f in fresh_manager.failures] == ["broken-plugin"]
    assert "boom" in fresh_manager.failures[0].message()


def test_strict_mode_makes_a_broken_plugin_fatal(fresh_manager, monkeypatch):
    monkeypatch.setenv(plugins.ENV_STRICT, "1")

    class Broken:
        @hookimpl
        def register_objectives(self, register):
            raise RuntimeError("boom")

    fresh_manager.register_plugin(Broken(), name="broken-plugin")
    with pytest.raises(PluginError, match="broken-plugin"):
        fresh_manager.registry  # noqa: B018


def test_invalid_name_is_rejected(fresh_manager):
    class BadName:
        @hookimpl
        def register_objectives(self, register):
            register("../escape", _toy_objective_factory)

    fresh_manager.register_plugin(BadName(), name="bad-name")
    with pytest.raises(PluginError, match="invalid objective name"):
        fresh_manager.registry.get("objective", "../escape")
    assert "../escape" not in fresh_manager.registry.names("objective")


def test_unknown_hook_in_a_plugin_is_reported_not_fatal(fresh_manager):
    class Typo:
        @hookimpl
        def register_objective(self, register):  # singular: not a hook
            pass

    fresh_manager.register_plugin(Typo(), name="typo-plugin")
    assert "typo-plugin" in [f.plugin for f in fresh_manager.failures]
    assert "pmrl" in fresh_manager.registry.names("objective")


@pytest.fixture
def installed_distributions(tmp_path, monkeypatch):
    """Make real installed distributions (dist-info with entry points) on sys.path, as pip would."""

    def install(dist: str, module: str, source: str, entry_point: str | None = None) -> Path:
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"{dist.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text(f"[pmrl_bench]\n{entry_point or dist} = {module}\n")
        return info

    monkeypatch.syspath_prepend(str(tmp_path))
    yield install
    for name in [m for m in sys.modules if m.startswith("epplugin_")]:
        del sys.modules[name]


GOOD_PLUGIN = """
from pmrl_bench import hookimpl

@hookimpl
def register_objectives(register):
    register("ep-objective", "pmrl_bench.builtins.objectives.infonce:PairwiseInfoNCE",
             description="from an entry point")
"""


def test_entry_point_plugins_load_and_broken_ones_are_skipped(installed_distributions, monkeypatch):
    installed_distributions("good-plugin", "epplugin_good", GOOD_PLUGIN)
    installed_distributions("bad-plugin", "epplugin_bad", "raise ImportError('missing dependency xyz')\n")
    monkeypatch.delenv(plugins.ENV_LOAD_PLUGINS)
    manager = plugins.PluginManager()
    component = manager.registry.get("objective", "ep-objective")
    assert (component.plugin, component.distribution, component.version) == ("good-plugin", "good-plugin", "1.2.3")
    assert [(f.plugin, f.stage) for f in manager.failures] == [("bad-plugin", "load")]
    assert "missing dependency xyz" in manager.failures[0].message()
    # Unset loads every installed plugin (CI installs plugins/*), so check ours, not the whole mapping.
    versions = manager.versions()
    assert versions["good-plugin"] == "1.2.3" and "bad-plugin" not in versions


@pytest.mark.parametrize(("allowed", "expected"), [("", False), ("good-plugin", True), ("other", False)])
def test_load_plugins_variable_limits_external_plugins(installed_distributions, monkeypatch, allowed, expected):
    installed_distributions("good-plugin", "epplugin_good2", GOOD_PLUGIN)
    monkeypatch.setenv(plugins.ENV_LOAD_PLUGINS, allowed)
    manager = plugins.PluginManager()
    assert ("ep-objective" in manager.registry.names("objective")) is expected
    assert "pmrl" in manager.registry.names("objective")  # built-ins always load
