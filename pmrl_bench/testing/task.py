"""The task contract: data that passes the runner's checks, loads identically twice and has an encoder for every
modality, and a data card that says what the data is and matches it; as check functions and as a test class to
subclass."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from pmrl_bench.cards import DataCard, ModalityCard, task_card
from pmrl_bench.components import TaskData
from pmrl_bench.errors import DataError, UsageError
from pmrl_bench.registry import Component, Registry
from pmrl_bench.testing.common import (
    ContractViolation,
    check_parameters,
    component_label,
    contract_component,
    create_checked,
)
from pmrl_bench.testing.runner import run_one_step


def load_task_data(component: Component, params: Mapping[str, Any]) -> TaskData:
    task = create_checked(component, params)
    load = getattr(task, "load", None)
    if not callable(load):
        raise ContractViolation(f"{component_label(component)}: the factory returned {type(task).__name__}, "
                                "which has no load()")
    try:
        data = load()
    except Exception as exc:
        raise ContractViolation(f"{component_label(component)}: load() raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(data, TaskData):
        raise ContractViolation(
            f"{component_label(component)}: load() returned {type(data).__name__}; it must return "
            "pmrl_bench.components.TaskData(modalities, train, test, num_classes)"
        )
    return data


def check_task(
    component: Component, params: Mapping[str, Any] | None = None, registry: Registry | None = None,
    encoders: Mapping[str, str] | None = None,
) -> TaskData:
    """Loads a :class:`TaskData` that passes the runner's checks, identically twice; every modality has an encoder
    (the default for its kind, or one named in ``encoders``). Returns the data."""
    from pmrl_bench.runner.checks import check_task_data

    params = params or {}
    data = load_task_data(component, params)
    try:
        check_task_data(component.name, data)
    except DataError as exc:
        raise ContractViolation(f"{component_label(component)}: {exc}") from None
    again = load_task_data(component, params)
    for split_name in ("train", "test"):
        first, second = getattr(data, split_name), getattr(again, split_name)
        for modality in data.modalities:
            if not np.array_equal(np.asarray(first.inputs[modality.name]),
                                  np.asarray(second.inputs.get(modality.name))):
                raise ContractViolation(
                    f"{component_label(component)}: two loads with the same parameters gave different "
                    f"{split_name} inputs for modality {modality.name!r}; "
                    "the data and split must be fixed by the task's parameters "
                    "(e.g. a seed parameter)"
                )
        if (first.labels is None) != (second.labels is None) or (
            first.labels is not None and not np.array_equal(first.labels, second.labels)
        ):
            raise ContractViolation(f"{component_label(component)}: two loads gave different {split_name} labels")
    if data.train.labels is not None and data.num_classes is None:
        raise ContractViolation(f"{component_label(component)}: the task has labels but num_classes is None")
    if registry is not None:
        for modality in data.modalities:
            if encoders and modality.name in encoders:
                continue
            try:
                registry.default_encoder_for(modality.kind)
            except UsageError as exc:
                raise ContractViolation(f"{component_label(component)}: modality {modality.name!r}: {exc}") from None
    return data


def _shown(field: str, value: Any) -> str:
    if field == "modalities":
        return ", ".join(f"{m.name} ({m.kind}, {'x'.join(map(str, m.shape))})" for m in value
                         if isinstance(m, ModalityCard)) or "none"
    return repr(dict(value) if field == "splits" else value)


def check_task_card(component: Component, params: Mapping[str, Any] | None = None,
                    data: TaskData | None = None) -> DataCard:
    """The task states a data card (``card()`` returning :class:`pmrl_bench.cards.DataCard`) that names the data, its
    source, licence and citation, and whose modalities (kinds and shapes), class count and split sizes are what
    ``load()`` gives (``data``, or loaded here). Returns the card."""
    params = params or {}
    task = create_checked(component, params)
    if not callable(getattr(task, "card", None)):
        raise ContractViolation(
            f"{component_label(component)}: the task has no card() method; every task states a data card "
            "(pmrl_bench.cards.DataCard: name, description, source, licence, citation, and the data's modalities, "
            "classes and split sizes): see 'Data cards' in docs/plugins.md"
        )
    try:
        card = task_card(task, component.name, "")
    except Exception as exc:
        raise ContractViolation(f"{component_label(component)}: card() raised {type(exc).__name__}: {exc}") from exc
    problems = card.problems()
    if problems:
        raise ContractViolation(f"{component_label(component)}: its data card is incomplete: {'; '.join(problems)}")
    loaded = card.with_data(data if data is not None else load_task_data(component, params))
    for field in ("modalities", "num_classes", "splits"):
        stated, actual = getattr(card, field), getattr(loaded, field)
        if (dict(stated) != dict(actual)) if field == "splits" else stated != actual:
            raise ContractViolation(
                f"{component_label(component)}: its data card states {field} {_shown(field, stated)}, but load() "
                f"gives {_shown(field, actual)}; derive the card from the parameters as load() does, or from the data "
                "(DataCard.with_data)"
            )
    return card


class TaskContract:
    """The contract every task must meet::

        class TestMyTask(TaskContract):
            plugin = my_package.plugin
            task = "my-task"
            params = {"n_train": 64}        # keep it small: the suite loads it a few times
            encoders = {}                   # modality -> encoder, for kinds without a default encoder
    """

    plugin: ClassVar[Any] = None
    task: ClassVar[str] = ""
    params: ClassVar[dict[str, Any]] = {}
    encoders: ClassVar[dict[str, str]] = {}

    @pytest.fixture
    def pmrl_component(self, pmrl_plugin_manager: Any, pmrl_register_plugin: Callable[..., str]) -> Component:
        return contract_component(self, "task", self.task, pmrl_register_plugin, pmrl_plugin_manager)

    def test_parameters_have_json_defaults(self, pmrl_component: Component) -> None:
        check_parameters(pmrl_component, self.params)

    def test_loads_valid_deterministic_data(self, pmrl_component: Component, pmrl_plugin_manager: Any) -> None:
        check_task(pmrl_component, self.params, pmrl_plugin_manager.registry, self.encoders)

    def test_states_a_data_card(self, pmrl_component: Component) -> None:
        check_task_card(pmrl_component, self.params)

    def test_one_step_through_the_runner(
        self, pmrl_component: Component, pmrl_plugin_manager: Any, tmp_path: Path
    ) -> None:
        run_one_step(
            pmrl_plugin_manager.registry, tmp_path / "results", task=pmrl_component.name, task_params=self.params,
            encoders=self.encoders,
        )
