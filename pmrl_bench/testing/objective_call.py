"""Build an objective and call it as the runner does, checking the shape of each answer: the steps every
objective check (:mod:`pmrl_bench.testing.objective`, :mod:`pmrl_bench.testing.search_space`) starts from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pmrl_bench.registry import Component
from pmrl_bench.testing.common import ContractViolation, component_label, create_checked

if TYPE_CHECKING:
    import torch
    from torch import nn


def build_objective(component: Component, params: Mapping[str, Any] | None = None) -> nn.Module:
    """``factory(**params)``, which must return a ``torch.nn.Module``."""
    import torch

    objective = create_checked(component, params or {})
    if not isinstance(objective, torch.nn.Module):
        raise ContractViolation(
            f"{component_label(component)}: the factory returned {type(objective).__name__}; an objective must be a "
            "torch.nn.Module, so that the runner can hand its parameters to the optimiser and move it to the device"
        )
    return objective


def call_objective(component: Component, objective: nn.Module, embeddings: Mapping[str, torch.Tensor],
                   case: str) -> Any:
    """Call the objective and check the shape of what it returns; returns ``(loss, terms)``."""
    import torch

    try:
        output = objective(dict(embeddings))
    except Exception as exc:
        raise ContractViolation(
            f"{component_label(component)}: forward raised {type(exc).__name__}: {exc} (input: {case})"
        ) from exc
    loss, terms = getattr(output, "loss", None), getattr(output, "terms", None)
    if loss is None or terms is None:
        raise ContractViolation(
            f"{component_label(component)}: forward returned {type(output).__name__}, "
            "not an object with .loss and .terms; "
            "return pmrl_bench.components.ObjectiveOutput(loss=<scalar tensor>, terms={name: <scalar tensor>})"
        )
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0 or not loss.is_floating_point():
        shown = f"a tensor of shape {tuple(loss.shape)} and dtype {loss.dtype}" if isinstance(loss, torch.Tensor) else (
            type(loss).__name__
        )
        raise ContractViolation(
            f"{component_label(component)}: .loss is {shown}; "
            "it must be a 0-dim floating tensor (reduce it, e.g. .mean())"
        )
    if not isinstance(terms, Mapping):
        raise ContractViolation(f"{component_label(component)}: .terms is {type(terms).__name__}; it must be a dict")
    for key, value in terms.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor) or value.ndim != 0:
            raise ContractViolation(
                f"{component_label(component)}: .terms[{key!r}] is {type(value).__name__}"
                f"{f' of shape {tuple(value.shape)}' if isinstance(value, torch.Tensor) else ''}; .terms maps names "
                "(str) to 0-dim tensors"
            )
    return loss, terms
