"""Shared by every contract: the violation type, how a component is named in messages, parameter checks,
building a component under the contract, random unit embeddings, and finding the component a contract checks."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pmrl_bench.errors import UsageError
from pmrl_bench.registry import Component

if TYPE_CHECKING:
    import torch


class ContractViolation(AssertionError):
    """A component breaks the plugin contract; the message says what is wrong and what is expected."""


def unit_embeddings(
    modalities: int | Sequence[str] = 3, batch: int = 8, dim: int = 16, seed: int = 0, requires_grad: bool = False
) -> dict[str, torch.Tensor]:
    """Random L2-normalised ``(batch, dim)`` embeddings per modality, reproducible from ``seed``.

    With ``requires_grad`` the returned tensors are leaves, so ``.grad`` holds what reaches each modality.
    """
    import torch
    import torch.nn.functional as F

    names = [f"m{i}" for i in range(modalities)] if isinstance(modalities, int) else list(modalities)
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for name in names:
        tensor = F.normalize(torch.randn(batch, dim, generator=generator), dim=-1)
        out[name] = tensor.requires_grad_(requires_grad)
    return out


def component_label(component: Component) -> str:
    """How messages name a component: ``objective 'my-loss' (plugin 'my_plugin')``."""
    return f"{component.kind} {component.name!r} (plugin {component.plugin!r})"


def is_json_value(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def check_parameters(component: Component, params: Mapping[str, Any] | None = None) -> None:
    """Every parameter has a JSON default (runs need no ``--set``; result files record them); ``params`` are known."""
    for name, parameter in component.parameters().items():
        if parameter.default is inspect.Parameter.empty:
            raise ContractViolation(
                f"{component_label(component)}: parameter {name!r} has no default; 'pmrl-bench run' builds components "
                "without --set, so give every parameter a default"
            )
        if not is_json_value(parameter.default):
            raise ContractViolation(
                f"{component_label(component)}: the default of parameter {name!r} is {parameter.default!r}, "
                "which is not a JSON value; result files record parameters as JSON, so use numbers, strings, "
                "booleans, None or lists"
            )
    try:
        component.resolve_params(dict(params or {}))
    except UsageError as exc:
        raise ContractViolation(f"{component_label(component)}: {exc}") from None


def create_checked(component: Component, params: Mapping[str, Any], **supplied: Any) -> Any:
    """``component.create(...)``, a failure being a :class:`ContractViolation` that names the component."""
    try:
        return component.create(**supplied, **params)
    except Exception as exc:
        raise ContractViolation(f"{component_label(component)}: building it raised "
                                f"{type(exc).__name__}: {exc}") from exc


def contract_component(contract: Any, kind: str, name: str, register: Callable[..., str], manager: Any) -> Component:
    """The component a contract class checks: its ``plugin`` registered for the test, then ``kind`` ``name``."""
    if not name:
        raise ContractViolation(f"{type(contract).__name__}: set the class attribute naming the {kind} to check")
    if contract.plugin is not None:
        register(contract.plugin)
    try:
        return manager.registry.get(kind, name)
    except UsageError as exc:
        raise ContractViolation(f"{type(contract).__name__}: {exc}") from None

