"""The objective contract's check of the modality counts an objective declares (``register(..., modalities=...)``
or an ``accepted_modalities`` attribute, :mod:`pmrl_bench.modality_counts`): a sweep reports the objective as not
applicable to tasks with other counts, so the declaration must be well formed and true at both of its ends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pmrl_bench.errors import PluginError
from pmrl_bench.modality_counts import Counts, accepted_counts, describe_counts
from pmrl_bench.registry import Component
from pmrl_bench.testing.common import ContractViolation, component_label, unit_embeddings
from pmrl_bench.testing.objective_call import build_objective, call_objective

# Beyond this count an objective is checked at this count only (a declaration such as range(2, 100) stays cheap).
LARGEST_CHECKED = 8


def check_objective_modality_counts(
    component: Component, params: Mapping[str, Any] | None = None, *, modalities: int = 3,
    batch_sizes: Sequence[int] = (2, 8), dim: int = 16, seed: int = 0,
) -> Counts | None:
    """The counts the objective built with ``params`` accepts are integers >= 2 and include ``modalities`` (the
    count the other checks use); its forward gives a finite loss at the smallest and the largest of them (up to
    :data:`LARGEST_CHECKED`). Returns the counts, or None when it declares none (any number)."""
    import torch

    objective = build_objective(component, params)
    try:
        accepted = accepted_counts(component, objective)
    except PluginError as exc:
        raise ContractViolation(f"{component_label(component)}: {exc}") from None
    if accepted is None:
        return None
    if not accepted:
        raise ContractViolation(f"{component_label(component)}: with these parameters it accepts no number of "
                                "modalities (its registration's modalities= and its accepted_modalities share none)")
    if modalities not in accepted:
        raise ContractViolation(
            f"{component_label(component)}: it accepts {describe_counts(accepted)} modalities, and the contract checks "
            f"it with {modalities}; set modalities = {accepted[0]} on the contract class"
        )
    batch = max(batch_sizes)
    for count in sorted({accepted[0], min(accepted[-1], LARGEST_CHECKED)}):
        if count not in accepted:
            continue
        case = f"{count} modalities x batch {batch} x dim {dim} (a count it declares it accepts)"
        loss, _ = call_objective(component, objective, unit_embeddings(count, batch, dim, seed), case)
        if not bool(torch.isfinite(loss)):
            raise ContractViolation(f"{component_label(component)}: loss is not finite ({float(loss)}) for {case}; "
                                    "declare only the modality counts it trains on")
    return accepted
