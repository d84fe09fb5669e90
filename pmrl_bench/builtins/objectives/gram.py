"""GRAM (Cicchetti, Grassucci, Sigillo, Comminiello; ICLR 2025, arXiv 2412.11959): volume contrastive loss.

``V_ij = Vol(a_i, o¹_j, ..., o^{k-1}_j) = sqrt(det G_ij)``, the volume of the parallelotope spanned by the anchor
of instance i and the other modalities of instance j (its Gram matrix G_ij). Small volume = aligned, so the
logits are ``-V/τ`` and ``loss = ½ (a2d + d2a)``: anchor→data (rows of V toward the diagonal) and data→anchor
(columns). The official DAM term (an ITM cross-encoder, weight 0.1) needs modules the harness does not have and
is left out.

Assembly: the B² Gram matrices share structure. With α_i = |a_i|², c_ij = (a_i·o^p_j)_p and H_j the Gram
matrix of instance j's non-anchor modalities, the block-determinant (Schur) identity written with the adjugate,
``det G_ij = α_i det H_j − c_ijᵀ adj(H_j) c_ij``, needs one (B, D)×(D, (k-1)B) matmul for all c_ij, one
small adjugate per instance j, and a (k-1)² quadratic form per pair: B²(k-1)² work instead of B² full k×k
determinants, and no B×B×k×k tensor. It is a polynomial in the dot products, so it is defined and
differentiable for singular H_j (duplicated or zero vectors), where an inverse-based Schur complement is not.

Stability (docs/objectives.md, pitfalls P4, P8):
* by default the dot products and the determinant are computed in float64 (``precision="float64"``): near
  collinearity an fp32 determinant loses everything below ~1e-7 and can come out negative (the official code
  hides that with ``abs``). In float64 the volume is exact to ~1e-8. ``precision="float32"`` is faster.
* determinants are clamped at ``DET_FLOOR`` before the square root, so no negative determinant reaches it
  and sqrt's infinite slope at 0 never turns into a NaN gradient (duplicated vectors give V = 0 with zero
  gradient through that entry); ``negative_det_fraction`` (a 0-dim tensor, left on the device so that no step
  waits for the GPU) holds the fraction of clamped negative determinants of the last forward.

Design choices (the official code: learnable raw τ = 0.07 with no clamp, label smoothing 0.1):
* ``label_smoothing`` defaults to the official 0.1; ``infonce`` and ``anchor`` default to 0, so set it to 0
  (or theirs to 0.1) for a like-for-like comparison;
* the temperature uses the open_clip convention of ``infonce`` and ``anchor`` (learnable log scale, clamped to
  [0, ln 100]): a raw learnable τ can cross zero (docs/objectives.md, pitfall P11); ``learnable=False`` fixes it;
* ``anchor``: a modality name, default None = the task's first modality.

Native retrieval score: ``-V`` between the anchor and the tuple of the other modalities, in both directions
(``"a->v+t"`` and ``"v+t->a"``); plain cosine stays the main retrieval metric.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from pmrl_bench.builtins.objectives._linalg import DET_FLOOR, adjugate_small, det_small
from pmrl_bench.builtins.objectives.anchor_tuple import MAX_MODALITIES, AnchorTupleObjective


def volume_determinants(anchor: torch.Tensor, others: Sequence[torch.Tensor]) -> torch.Tensor:
    """``det G_ij`` for anchors (Nq, D) against tuples of others [(Ng, D), ...]: (Nq, Ng), possibly < 0 by rounding."""
    n = len(others)
    if not 1 <= n < MAX_MODALITIES:
        raise ValueError(f"a volume needs 2 to {MAX_MODALITIES} modalities, got {n + 1}")
    # H_j: Gram matrix of each tuple's own vectors, entry by entry (elementwise: batched k×k matmuls are slow)
    dots = {(p, q): (others[p] * others[q]).sum(-1) for p in range(n) for q in range(p, n)}
    H = torch.stack([torch.stack([dots[min(p, q), max(p, q)] for q in range(n)], -1) for p in range(n)], -2)
    adj = adjugate_small(H)  # (Ng, n, n), symmetric
    # c_ij^p = a_i · o_j^p for all pairs: one (Nq, D) × (D, n·Ng) matmul, sliced into n contiguous-row blocks
    C = anchor @ torch.cat(list(others)).T
    Ng = len(others[0])
    c = [C[:, p * Ng : (p + 1) * Ng] for p in range(n)]
    # c_ijᵀ adj(H_j) c_ij = Σ_p adj_pp c_p² + 2 Σ_{p<q} adj_pq c_p c_q, never a (Nq, Ng, n, n) tensor
    quadratic = sum(adj[:, p, p] * c[p] * c[p] for p in range(n))
    quadratic = quadratic + sum(2 * adj[:, p, q] * c[p] * c[q] for p in range(n) for q in range(p + 1, n))
    alpha = (anchor * anchor).sum(-1)  # |a_i|², 1 for unit vectors but exact for zero ones
    return alpha[:, None] * det_small(H)[None, :] - quadratic


def volume_matrix(
    anchor: torch.Tensor, others: Sequence[torch.Tensor], dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(V, negative)``: volumes (Nq, Ng) in ``dtype`` and the boolean mask of determinants that came out < 0."""
    det = volume_determinants(anchor.to(dtype), [o.to(dtype) for o in others])
    return det.clamp_min(DET_FLOOR).sqrt(), det < 0


class GRAMLoss(AnchorTupleObjective):
    """GRAM: contrast the volume spanned by an anchor and another instance's other modalities (both directions).

    Args:
        anchor: the modality whose volume with the others is contrasted; null: the task's first modality.
        temperature: the starting softmax temperature (logit scale 1/temperature).
        learnable: learn the logit scale, clamped to [1, 100]; false keeps 1/temperature.
        label_smoothing: label smoothing of both cross-entropies, in [0, 1) (the official code's 0.1).
        precision: dtype of the volume computation, "float64" or "float32".
    """

    label = "gram"
    term_order = ("d2a", "a2d")

    def _measure(self, anchor: torch.Tensor, others: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return volume_matrix(anchor, others, self.measure_dtype)

    def volumes(self, embeddings: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, B) volumes: row i = anchor of instance i, column j = the other modalities of instance j."""
        return self.measures(embeddings)
