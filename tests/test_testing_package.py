"""pmrl_bench.testing is a package with one module per contract; the pytest11 entry point still names it and
everything a plugin author imports from it is still there."""

from __future__ import annotations

import importlib
import importlib.metadata

import pmrl_bench.testing as testing


def test_the_pytest11_entry_point_loads_the_package():
    (entry_point,) = [ep for ep in importlib.metadata.entry_points(group="pytest11") if ep.name == "pmrl_bench"]
    module = entry_point.load()
    assert module is testing and hasattr(module, "__path__")


def test_every_public_name_is_importable_from_the_package_and_lives_in_a_contract_module():
    for name in testing.__all__:
        assert getattr(testing, name) is not None, name
    homes = {name: getattr(testing, name).__module__
             for name in ("ObjectiveContract", "EncoderContract", "TaskContract")}
    assert homes == {"ObjectiveContract": "pmrl_bench.testing.objective",
                     "EncoderContract": "pmrl_bench.testing.encoder", "TaskContract": "pmrl_bench.testing.task"}


def test_lazy_references_to_the_old_module_path_still_resolve():
    # Plugins register factories as "module:attribute" strings; the helpers' old path must keep working.
    module_name, _, attribute = "pmrl_bench.testing:reference_objective".partition(":")
    factory = getattr(importlib.import_module(module_name), attribute)
    assert factory is testing.helpers.reference_objective
    for name in ("check_objective_output", "check_objective_finite", "check_objective_gradients",
                 "check_objective_determinism", "check_objective_native_score", "build_objective",
                 "pmrl_plugin_manager", "pmrl_register_plugin", "pmrl_tiny_task", "pmrl_default_encoders"):
        assert hasattr(testing, name), name
