"""Ablation: minimise the product of each instance's singular values, the formulation PMRL calls unstable.

``volume = mean_i Π_j σ_ij = mean_i sqrt(det Z_iᵀ Z_i)``, the volume of the parallelotope spanned by the
instance's own k modality embeddings (GRAM's positive score, with no negatives). Beside ``pmrl-intra`` (the
share of σ_1) it makes PMRL's claim testable: ∂Vol/∂σ_j = Π_{l≠j} σ_l pushes hardest on the *smallest* σ, so
the volume reaches 0 at rank k−1, not at rank 1 (three coplanar vectors have volume 0), and once one σ ≈ 0
its gradient on the others vanishes (docs/objectives.md, pitfall P9). ``inter=True`` adds PMRL's inter term
(leading-vector contrast, ``tau2``), the counterpart of ``pmrl`` with the volume in place of the intra term.

The determinant is a cofactor polynomial in float64 and clamped at 1e-12 before the square root, so the loss
and its gradient stay finite for duplicated, collinear and zero vectors (V = 0 there, with zero gradient).

Native retrieval score: ``-Vol`` of (one modality of the query instance, the other modalities of the gallery
instance), for every modality against the tuple of the others, both ways.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from pmrl_bench.builtins.objectives._common import check_at_least, check_positive, stack_modalities
from pmrl_bench.builtins.objectives._linalg import DET_FLOOR, MAX_COFACTOR_SIZE, det_small
from pmrl_bench.builtins.objectives.anchor_tuple import AnchorTupleScore
from pmrl_bench.builtins.objectives.gram import volume_matrix
from pmrl_bench.builtins.objectives.pmrl import instance_spectrum, inter_term
from pmrl_bench.components import ObjectiveOutput


def instance_volumes(E: torch.Tensor) -> torch.Tensor:
    """Vol_i = Π_j σ_ij = sqrt(det E_i E_iᵀ) for every instance of E (B, k, D) (rows z_i^m), float64."""
    if E.shape[1] > MAX_COFACTOR_SIZE:
        raise ValueError(f"volume supports up to {MAX_COFACTOR_SIZE} modalities, got {E.shape[1]}")
    E64 = E.double()
    return det_small(E64 @ E64.mT).clamp_min(DET_FLOOR).sqrt()


class VolumeLoss(AnchorTupleScore, nn.Module):
    """Ablation: mean volume of each instance's own modality stack (product of its singular values).

    Args:
        inter: add PMRL's inter term (the contrast of instances' leading singular vectors).
        tau2: temperature of the inter term.
        grad_guard: ε > 0 bounds the inter term's 1/(σ1² − σj²) gradient factors by 1/(2ε); 0 is exact.
    """

    supports_seed_batch = True

    def __init__(self, inter: bool = False, tau2: float = 0.1, grad_guard: float = 0.0) -> None:
        super().__init__()
        check_positive(tau2=tau2)
        check_at_least(0, note="0 = exact gradient", grad_guard=grad_guard)
        self.inter, self.tau2, self.grad_guard = bool(inter), float(tau2), float(grad_guard)

    def forward(self, embeddings: Mapping[str, torch.Tensor]) -> ObjectiveOutput:
        device_type = next(iter(embeddings.values())).device.type
        with torch.autocast(device_type=device_type, enabled=False):
            E = stack_modalities(embeddings)  # (B, k, D)
            terms = {"volume": instance_volumes(E).mean().to(E.dtype)}
            if self.inter:
                terms["inter"] = inter_term(instance_spectrum(E, self.grad_guard).u, self.tau2)
        return ObjectiveOutput(loss=sum(terms.values()), terms=terms)  # type: ignore[arg-type]

    def _measure(self, anchor: torch.Tensor, others: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The native score's measure: GRAM's volume, always in float64."""
        return volume_matrix(anchor, others, torch.float64)

    def native_directions(self, modalities: Sequence[str]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """Every modality against the tuple of the others, and back (the volume singles out no modality)."""
        directions = []
        for m in modalities:
            others = tuple(o for o in modalities if o != m)
            directions += [((m,), others), (others, (m,))]
        return directions if len(modalities) > 2 else directions[:2]
