"""pmrl_bench.testing, the pytest plugin for plugin authors: its fixtures, and a contract suite that passes correct
components and fails broken ones with a message that says what is wrong (run in a separate pytest via pytester)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import torch

from pmrl_bench import hookimpl, plugins
from pmrl_bench.components import ObjectiveOutput
from pmrl_bench.testing import (
    REFERENCE_OBJECTIVE,
    TINY_TASK,
    ContractViolation,
    ObjectiveContract,
    check_objective,
    run_one_step,
    unit_embeddings,
)

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def one_torch_thread(monkeypatch):
    """Tiny tensors gain nothing from intra-op threads, and on a shared 2-core machine they cost 10x."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # for the pytest subprocesses
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _run(pytester: pytest.Pytester, source: str) -> dict[str, tuple[str, str]]:
    """Run ``source`` as a test module in a separate pytest process (an in-process run would drop and re-import
    torch and numpy extension modules); ``{"Class::test": (outcome, failure text)}`` from its JUnit XML."""
    pytester.makepyfile(test_inner=source)
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "--junitxml=report.xml")
    outcomes = {}
    for case in ET.parse(pytester.path / "report.xml").iter("testcase"):
        key = f"{case.get('classname', '').rpartition('.')[2]}::{case.get('name')}".lstrip(":")
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        if failure is not None:
            outcomes[key] = ("failed", f"{failure.get('message', '')}\n{failure.text or ''}")
        elif case.find("skipped") is not None:
            outcomes[key] = ("skipped", "")
        else:
            outcomes[key] = ("passed", "")
    return outcomes


BROKEN_OBJECTIVES = '''
import torch
from pmrl_bench import hookimpl
from pmrl_bench.components import ObjectiveOutput
from pmrl_bench.testing import ObjectiveContract


class NanLoss(torch.nn.Module):
    def forward(self, embeddings):
        loss = sum(z.sum() for z in embeddings.values()) * float("nan")
        return ObjectiveOutput(loss=loss, terms={})


class NoGradient(torch.nn.Module):
    def forward(self, embeddings):
        stacked = torch.stack([z.detach() for z in embeddings.values()])
        return ObjectiveOutput(loss=stacked.pow(2).mean(), terms={})


class IgnoresLastModality(torch.nn.Module):
    def forward(self, embeddings):
        a, b, *_ = embeddings.values()
        return ObjectiveOutput(loss=1 - (a * b).sum(-1).mean(), terms={})


class WrongReturnType(torch.nn.Module):
    def forward(self, embeddings):
        return sum(z.sum() for z in embeddings.values())


class Broken:
    @hookimpl
    def register_objectives(self, register):
        register("nan-loss", NanLoss)
        register("no-gradient", NoGradient)
        register("ignores-last", IgnoresLastModality)
        register("wrong-type", WrongReturnType)


class TestNanLoss(ObjectiveContract):
    plugin = Broken()
    objective = "nan-loss"


class TestNoGradient(ObjectiveContract):
    plugin = Broken()
    objective = "no-gradient"


class TestIgnoresLast(ObjectiveContract):
    plugin = Broken()
    objective = "ignores-last"


class TestWrongType(ObjectiveContract):
    plugin = Broken()
    objective = "wrong-type"


class TestBuiltinInfoNCE(ObjectiveContract):
    objective = "infonce"
'''


@pytest.mark.slow
def test_contract_suite_names_what_is_wrong_with_broken_objectives(pytester: pytest.Pytester):
    outcomes = _run(pytester, BROKEN_OBJECTIVES)

    def failed(test: str, *fragments: str) -> None:
        outcome, text = outcomes[test]
        assert outcome == "failed", f"{test} {outcome}"
        assert "ContractViolation" in text
        for fragment in fragments:
            assert fragment in text, f"{fragment!r} not in the failure of {test}:\n{text[-2000:]}"

    failed("TestNanLoss::test_loss_is_finite", "objective 'nan-loss'", "loss is not finite (nan)")
    failed("TestNanLoss::test_gradients_flow", "gradient with respect to modality 'm0' is not finite")
    failed("TestNanLoss::test_one_step_through_the_runner", "ended 'diverged'", "non-finite loss")
    assert outcomes["TestNanLoss::test_forward_returns_scalar_loss_and_terms"][0] == "passed"

    failed("TestNoGradient::test_gradients_flow", "objective 'no-gradient'", "the loss carries no gradient")
    failed("TestNoGradient::test_one_step_through_the_runner", "ended 'failed'", "does not require grad")
    assert outcomes["TestNoGradient::test_loss_is_finite"][0] == "passed"

    failed("TestIgnoresLast::test_gradients_flow", "no gradient reaches modality 'm2'")
    assert outcomes["TestIgnoresLast::test_one_step_through_the_runner"][0] == "passed"  # it trains, just badly

    for test in ("test_forward_returns_scalar_loss_and_terms", "test_loss_is_finite", "test_gradients_flow"):
        failed(f"TestWrongType::{test}", "objective 'wrong-type'", "forward returned Tensor, not an object with .loss")
    failed("TestWrongType::test_one_step_through_the_runner", "ended 'failed'", "has no attribute 'loss'")

    builtin = {k: v[0] for k, v in outcomes.items() if k.startswith("TestBuiltinInfoNCE::")}
    assert (set(builtin.values()) == {"passed", "skipped"}
            and builtin["TestBuiltinInfoNCE::test_native_score"] == "skipped")
    assert len(builtin) == len([name for name in dir(ObjectiveContract) if name.startswith("test_")])


BROKEN_ENCODERS_AND_TASKS = '''
import numpy as np
import torch
from pmrl_bench import hookimpl
from pmrl_bench.components import VECTOR, Modality, Split, TaskData
from pmrl_bench.testing import EncoderContract, TaskContract


class WrongWidth(torch.nn.Module):
    def __init__(self, *, modality, dim):
        super().__init__()
        self.proj = torch.nn.Linear(modality.shape[0], dim + 1)

    def forward(self, x):
        return self.proj(x)


class BatchDependent(torch.nn.Module):
    def __init__(self, *, modality, dim):
        super().__init__()
        self.proj = torch.nn.Linear(modality.shape[0], dim)

    def forward(self, x):
        h = self.proj(x)
        return h - h.mean(0, keepdim=True)


class Unseeded:
    def load(self):
        rng = np.random.default_rng()  # a fresh split on every load
        x = {m: rng.standard_normal((20, 4)).astype(np.float32) for m in ("a", "b")}
        modalities = [Modality(m, VECTOR, (4,)) for m in ("a", "b")]
        return TaskData(modalities, Split({m: v[:12] for m, v in x.items()}), Split({m: v[12:] for m, v in x.items()}))


def needs_a_size(size):
    return Unseeded()


class Plugin:
    @hookimpl
    def register_encoders(self, register):
        register("wrong-width", WrongWidth, modality_kinds=("vector",))
        register("batch-dependent", BatchDependent)

    @hookimpl
    def register_tasks(self, register):
        register("unseeded", Unseeded)
        register("needs-a-size", needs_a_size)


class TestWrongWidth(EncoderContract):
    plugin = Plugin()
    encoder = "wrong-width"


class TestBatchDependent(EncoderContract):
    plugin = Plugin()
    encoder = "batch-dependent"


class TestUnseeded(TaskContract):
    plugin = Plugin()
    task = "unseeded"


class TestNeedsASize(TaskContract):
    plugin = Plugin()
    task = "needs-a-size"


class TestBuiltinMLP(EncoderContract):
    encoder = "mlp"


# pmrl_register_plugin: registered for one test, unregistered after it.
seen = {}


class Mine:
    @hookimpl
    def register_objectives(self, register):
        register("mine", "pmrl_bench.testing:reference_objective")


def test_registered(pmrl_register_plugin, pmrl_plugin_manager):
    from pmrl_bench import create_objective, plugins

    seen["name"] = pmrl_register_plugin(Mine(), name="mine-plugin")
    seen["manager"] = pmrl_plugin_manager
    assert plugins.MANAGER is pmrl_plugin_manager
    assert pmrl_plugin_manager.registry.get("objective", "mine").plugin == "mine-plugin"
    create_objective("mine", temperature=0.2)


def test_unregistered_afterwards():
    assert not seen["manager"].pm.has_plugin(seen["name"])
    assert "mine" not in seen["manager"].registry.names("objective")
'''


@pytest.mark.slow
def test_contract_suite_names_what_is_wrong_with_broken_encoders_and_tasks_and_fixtures_isolate(
        pytester: pytest.Pytester):
    outcomes = _run(pytester, BROKEN_ENCODERS_AND_TASKS)

    def text(test: str) -> str:
        outcome, failure = outcomes[test]
        assert outcome == "failed", f"{test} {outcome}"
        return failure

    assert "expected a floating (8, 16) tensor" in text("TestWrongWidth::test_shapes_gradients_and_determinism")
    assert "depends on the other rows" in text("TestBatchDependent::test_shapes_gradients_and_determinism")
    assert "two loads with the same parameters gave different train inputs" in text(
        "TestUnseeded::test_loads_valid_deterministic_data"
    )
    assert "parameter 'size' has no default" in text("TestNeedsASize::test_parameters_have_json_defaults")
    assert {outcomes[k][0] for k in outcomes if k.startswith("TestBuiltinMLP::")} == {"passed"}
    assert outcomes["test_inner::test_registered"] == ("passed", "")
    assert outcomes["test_inner::test_unregistered_afterwards"] == ("passed", "")


def test_fixtures_give_a_tiny_task_and_its_default_encoders(pmrl_tiny_task, pmrl_default_encoders):
    assert [m.name for m in pmrl_tiny_task.modalities] == ["m0", "m1", "m2"]
    assert pmrl_tiny_task.num_classes == 4 and len(pmrl_tiny_task.train) == 64
    for m in pmrl_tiny_task.modalities:
        x = torch.as_tensor(pmrl_tiny_task.test.inputs[m.name])
        assert pmrl_default_encoders[m.name](x).shape == (32, 16)


def test_plugin_manager_fixture_isolates_installed_plugins(pmrl_plugin_manager, monkeypatch):
    assert plugins.MANAGER is pmrl_plugin_manager
    assert all(info.builtin or info.name == "pmrl_bench.testing" for info in pmrl_plugin_manager.plugins())
    registry = pmrl_plugin_manager.registry
    assert TINY_TASK in registry.names("task") and REFERENCE_OBJECTIVE in registry.names("objective")


def test_check_functions_work_outside_the_classes(pmrl_plugin_manager, tmp_path):
    registry = pmrl_plugin_manager.registry
    check_objective(registry.get("objective", "pmrl"))
    result = run_one_step(registry, tmp_path, objective="pmrl", steps=2, seed=1)
    assert (result.status, result.seed, result.params["budget"]["steps"]) == ("ok", 1, 2)
    assert len(result.metrics.retrieval) == 6  # every ordered pair of the tiny task's three modalities


def test_a_violation_is_an_assertion_error_that_names_the_component(pmrl_register_plugin, pmrl_plugin_manager):
    class Scalar(torch.nn.Module):
        def forward(self, embeddings):
            return ObjectiveOutput(loss=torch.stack(list(embeddings.values())).sum(-1), terms={})  # (k, B), no mean

    class Plugin:
        @hookimpl
        def register_objectives(self, register):
            register("unreduced", Scalar)

    pmrl_register_plugin(Plugin(), name="unreduced-plugin")
    with pytest.raises(AssertionError) as info:
        check_objective(pmrl_plugin_manager.registry.get("objective", "unreduced"))
    assert isinstance(info.value, ContractViolation)
    assert "objective 'unreduced' (plugin 'unreduced-plugin')" in str(info.value)
    assert "0-dim floating tensor" in str(info.value)


def test_unit_embeddings_are_reproducible_unit_vectors():
    a, b = unit_embeddings(3, 5, 7, seed=3), unit_embeddings(3, 5, 7, seed=3)
    assert all(torch.equal(a[m], b[m]) for m in a)
    assert torch.allclose(a["m1"].norm(dim=-1), torch.ones(5))
    assert not torch.equal(a["m0"], unit_embeddings(3, 5, 7, seed=4)["m0"])
