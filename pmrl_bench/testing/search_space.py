"""The contract of an objective's hyper-parameter search space (``register(..., search_space=...)``), which
``pmrl-bench tune`` samples: every key is a parameter of the objective, every distribution can be sampled, and the
objective accepts the extreme values of each and still gives a finite loss."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pmrl_bench.registry import Component
from pmrl_bench.testing.common import ContractViolation, component_label


def check_search_space(component: Component, params: Mapping[str, Any] | None = None, *, modalities: int = 3,
                       batch: int = 8, dim: int = 16, seed: int = 0) -> bool:
    """Check the declared space; False when the objective declares none (nothing to check)."""
    import torch

    from pmrl_bench.testing.common import unit_embeddings
    from pmrl_bench.testing.objective_call import build_objective, call_objective
    from pmrl_bench.tuning.space import check_space

    declared = component.metadata.get("search_space")
    if declared is None:
        return False
    label = component_label(component)
    try:
        space = check_space(declared, component.parameters(), label)
    except ValueError as exc:
        raise ContractViolation(f"{label}: {exc}") from None
    embeddings = unit_embeddings(modalities, batch, dim, seed)
    for name, distribution in space.items():
        for value in distribution.corners():
            case = f"{name}={value!r} (an extreme of its search space)"
            try:
                objective = build_objective(component, {**(params or {}), name: value})
            except ContractViolation as exc:
                raise ContractViolation(f"{label}: the search space reaches {case}, "
                                        f"which the factory rejects: {exc}") from None
            loss, _ = call_objective(component, objective, embeddings, case)
            if not torch.isfinite(loss):
                raise ContractViolation(f"{label}: the loss is not finite at {case}; narrow the search space")
    return True
