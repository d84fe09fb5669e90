"""TRIANGLE (Cicchetti, Grassucci, Comminiello; NeurIPS 2025, github.com/ispamm/TRIANGLE): area contrastive loss.

For an anchor t (text in the paper) and the two other modalities v, a of another instance, the similarity is the
negative area of the triangle with vertices t, v, a: with u = t − v and w = t − a,
``area = ½·sqrt(‖u‖²‖w‖² − (u·w)²)``. Logits are ``-area/τ`` between the anchor of instance i and the other
modalities of instance j, and ``loss = ½ (a2d + d2a)``: anchor→data (rows of the (B, B) matrix toward the
diagonal) and data→anchor (columns), the official ``area`` and ``areaT`` cross-entropies. Unlike GRAM's volume,
spanned from the origin, the area is spanned from the anchor's tip: it is 0 only when the three points coincide
or are collinear, not when the vectors are parallel or anti-parallel. The official ITM/DTM cross-encoder term
(``itm_ratio``) needs modules the harness does not have and is left out.

Where the paper and the code disagree (the default follows the official training code):

* **square root** (``sqrt``): the official batched ``area_computation`` drops it and keeps the ½ — its comment reads
  "I remove sqrt calculation", so it trains on ``(‖u‖²‖w‖² − (u·w)²)/2`` = 2·area² — while the README's
  ``basic_area_computation`` and the paper keep ``½·sqrt(·)``. ``sqrt=False`` (default) is the code's squared-area
  surrogate; ``sqrt=True`` the paper's area. The surrogate is smooth everywhere; the area has sqrt's infinite slope
  at 0, handled as in GRAM (below).
* **temperature**: the official code divides by a raw learnable ``contra_temp`` (0.07, no clamp); here the open_clip
  convention of every built-in contrastive objective (learnable log scale, clamped to [0, ln 100]) so a temperature
  cannot cross zero; ``learnable=False`` fixes it.
* **label smoothing** defaults to the official 0.1 (``infonce`` and ``anchor`` default to 0).

Number of modalities k (the paper has k = 3): the area generalises as the volume of the simplex spanned by the
anchor and the k−1 other points, i.e. of the k−1 difference vectors d_p = t − o_p: ``sqrt(det G)/(k−1)!`` with G
their Gram matrix, and the surrogate without the root, ``det G/(k−1)!`` (the official expression for k = 3).
k = 2 gives the segment length ``‖t − v‖`` (surrogate ``‖t − v‖² = 2 − 2 t·v`` for unit vectors, so the surrogate
loss at k = 2 is CLIP's InfoNCE at temperature τ/2, softmax being shift-invariant). Up to 8 modalities (cofactor
determinants of at most 7×7). The registered ``triangle`` is the paper's, k = 3 (``modalities=(3,)`` where it
registers): a sweep reports it as not applicable to other counts; a plugin may register this class for others.

Assembly and numerics: G_ij's entries are ``|t_i|² − t_i·o^p_j − t_i·o^q_j + o^p_j·o^q_j``, so one (B, D) ×
(D, (k−1)B) matmul gives every pair (no (B, B, D) difference tensor, which the official code materialises), and
the determinant is a cofactor polynomial in them (finite gradients for singular G: duplicated or collinear points).
These entries cancel when points nearly coincide, so by default they are computed in float64
(``precision="float64"``, as GRAM); ``precision="float32"`` is faster. A determinant that rounding makes negative
is clamped (at 0 for the surrogate, at ``DET_FLOOR`` before a root, so sqrt's infinite slope at 0 never yields a
NaN gradient); ``negative_det_fraction`` (a 0-dim device tensor) holds the fraction clamped in the last forward.

Native retrieval score: ``-area`` (the measure trained on) between the anchor and the tuple of the other
modalities, both directions (``"t->v+a"`` and ``"v+a->t"``); plain cosine stays the main retrieval metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from pmrl_bench.builtins.objectives._linalg import DET_FLOOR, det_small
from pmrl_bench.builtins.objectives.anchor_tuple import MAX_MODALITIES, AnchorTupleObjective


def simplex_determinants(anchor: torch.Tensor, others: Sequence[torch.Tensor]) -> torch.Tensor:
    """``det G_ij`` (Nq, Ng) of the difference vectors ``anchor_i − others[p]_j``; possibly < 0 by rounding."""
    n = len(others)
    if not 1 <= n < MAX_MODALITIES:
        raise ValueError(f"a simplex needs 2 to {MAX_MODALITIES} modalities, got {n + 1}")
    Ng = len(others[0])
    alpha = (anchor * anchor).sum(-1)[:, None]  # |t_i|²: 1 for unit vectors, exact for zero ones
    C = anchor @ torch.cat(list(others)).T  # t_i · o^p_j for every p in one matmul, (Nq, n·Ng)
    c = [C[:, p * Ng : (p + 1) * Ng] for p in range(n)]
    entries: dict[tuple[int, int], torch.Tensor] = {}
    for p in range(n):
        for q in range(p, n):
            h = (others[p] * others[q]).sum(-1)[None, :]  # o^p_j · o^q_j
            entries[p, q] = alpha - c[p] - c[q] + h
    if n == 1:
        return entries[0, 0]
    if n == 2:  # the paper's case, without building an (Nq, Ng, 2, 2) tensor
        return entries[0, 0] * entries[1, 1] - entries[0, 1] * entries[0, 1]
    G = torch.stack([torch.stack([entries[min(p, q), max(p, q)] for q in range(n)], -1) for p in range(n)], -2)
    return det_small(G)


def area_matrix(
    anchor: torch.Tensor, others: Sequence[torch.Tensor], sqrt: bool = False, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, negative)``: the simplex measure (Nq, Ng) in ``dtype`` and the mask of determinants that came out < 0.

    ``sqrt=True``: ``sqrt(det)/(k−1)!``, the area for k = 3; ``sqrt=False``: ``det/(k−1)!``, the official surrogate.
    """
    det = simplex_determinants(anchor.to(dtype), [o.to(dtype) for o in others])
    scale = 1.0 / math.factorial(len(others))
    measure = det.clamp_min(DET_FLOOR).sqrt() if sqrt else det.clamp_min(0.0)
    return measure * scale, det < 0


class TriangleLoss(AnchorTupleObjective):
    """TRIANGLE: contrast the area of the triangle between an anchor and another instance's other modalities.

    Args:
        anchor: the anchor modality (the triangle's shared vertex); default: the task's first modality.
        temperature: initial softmax temperature of the −area logits.
        learnable: learn the temperature (open_clip's clamped log scale); false fixes it.
        label_smoothing: label smoothing of both cross-entropies (the official code's 0.1).
        sqrt: true: the area ½·sqrt(‖u‖²‖w‖² − (u·w)²) (paper); false: the squared-area surrogate (official code).
        precision: dtype of the Gram determinants, "float64" (exact near collinearity) or "float32".
    """

    label = "triangle"

    def __init__(
        self,
        anchor: str | None = None,
        temperature: float = 0.07,
        learnable: bool = True,
        label_smoothing: float = 0.1,
        sqrt: bool = False,
        precision: str = "float64",
    ) -> None:
        super().__init__(anchor, temperature, learnable, label_smoothing, precision)
        self.sqrt = bool(sqrt)

    def _measure(self, anchor: torch.Tensor, others: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The area (or the simplex's measure for k != 3), with the root or without it (``sqrt``)."""
        return area_matrix(anchor, others, self.sqrt, self.measure_dtype)

    def areas(self, embeddings: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, B) measures: row i = anchor of instance i, column j = the other modalities of instance j."""
        return self.measures(embeddings)
