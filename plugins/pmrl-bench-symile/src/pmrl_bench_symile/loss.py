"""Symile (Saporta, Puli, Goldstein and Ranganath, NeurIPS 2024): contrastive learning with the multilinear inner
product (MIP) of all modalities at once, which targets the total correlation of the modalities, including the
information only all of them together carry (e.g. c = a XOR b), which pairwise objectives cannot see.

``MIP(x^1, ..., x^k) = sum_d prod_m x^m_d``. Each modality takes a turn as the anchor: anchor row i is scored
against products of the other modalities' rows, and a cross-entropy picks out the positive (every modality's row
i); the loss is the mean over anchors.

Negatives (``negative_sampling``):

* ``"n"``: per anchor, the rows of each other modality are permuted independently and multiplied, so column j of
  row i is ``MIP(a_i, r1[p1(j)], r2[p2(j)], ...)``; the diagonal is replaced by the positive MIP. N - 1 negatives
  per positive; an independent permutation can, rarely, produce a false negative.
* ``"n_squared"``: every combination of the other modalities' rows, N^(k-1) candidates per anchor row. Exact but
  O(N^k D): for k = 3 and moderate batches only.

The logit scale ``s = exp(log_scale)`` is learnable and, as in the official code, not clamped. For unit vectors
``|MIP| <= max_d |x^3_d|`` (small in high dimension), so s has to grow large; it lives in log space.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pmrl_bench.components import ObjectiveOutput

NEGATIVE_SAMPLING = ("n", "n_squared")
# "n_squared" holds N^(k-1) x D products per anchor; beyond this many floats, refuse rather than exhaust memory.
MAX_N_SQUARED_ELEMENTS = 2**25


def elementwise_product(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``x^1 * x^2 * ...`` row by row: the MIP of rows i is ``elementwise_product(...)[i].sum()``."""
    product = tensors[0]
    for tensor in tensors[1:]:
        product = product * tensor  # not in place: autograd needs every factor
    return product


def logits_n(anchor: torch.Tensor, others: Sequence[torch.Tensor],
             permutations: Sequence[torch.Tensor]) -> torch.Tensor:
    """``(N, N)`` MIP logits with one independent row permutation per non-anchor modality; positives on the diagonal."""
    shuffled = elementwise_product([r[p] for r, p in zip(others, permutations, strict=True)])
    logits = anchor @ shuffled.T
    positive = elementwise_product([anchor, *others]).sum(-1)
    diagonal = torch.eye(len(anchor), dtype=torch.bool, device=anchor.device)
    return torch.where(diagonal, positive.unsqueeze(0), logits)  # (i, i) <- positive[i]


def logits_n_squared(anchor: torch.Tensor, others: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, N^(k-1))`` MIP logits against every combination of the other modalities' rows, and the column of
    each row's positive (combination index ``j1 N^(k-2) + ... + j_(k-1)``, so row i's is ``i (N^(k-1)-1)/(N-1)``)."""
    n, dim = anchor.shape
    if n ** len(others) * dim > MAX_N_SQUARED_ELEMENTS:
        raise ValueError(
            f"negative_sampling='n_squared' needs {n}^{len(others)} x {dim} products for batch {n} and "
            f"{len(others) + 1} modalities, over the limit of {MAX_N_SQUARED_ELEMENTS}; use negative_sampling='n' "
            "or a smaller --batch-size"
        )
    combinations = others[0]
    for tensor in others[1:]:
        combinations = (combinations.unsqueeze(1) * tensor.unsqueeze(0)).reshape(-1, dim)
    stride = sum(n**power for power in range(len(others)))  # 1 + N + N^2 + ...: index of (i, i, ..., i) over i
    positives = torch.arange(n, device=anchor.device) * stride
    return anchor @ combinations.T, positives


class SymileLoss(nn.Module):
    """Symile: contrastive loss on the multilinear inner product of all modalities (Saporta et al. 2024)."""

    def __init__(self, negative_sampling: str = "n", log_scale_init: float = 2.6592, learnable: bool = True) -> None:
        """``log_scale_init``: initial ln s; 2.6592 = ln(1/0.07), CLIP's value (the official XOR example uses -0.3)."""
        super().__init__()
        if negative_sampling not in NEGATIVE_SAMPLING:
            raise ValueError(f"negative_sampling must be 'n' or 'n_squared', got {negative_sampling!r}")
        if not math.isfinite(log_scale_init):
            raise ValueError(f"log_scale_init must be finite, got {log_scale_init}")
        self.negative_sampling = negative_sampling
        log_scale = torch.tensor(float(log_scale_init))
        if learnable:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def check_modalities(self, names: Sequence[str]) -> None:
        if len(names) < 2:
            raise ValueError(f"symile needs at least 2 modalities, got {list(names)}")

    def forward(self, embeddings: Mapping[str, torch.Tensor]) -> ObjectiveOutput:
        names = list(embeddings)
        self.check_modalities(names)
        reps = [embeddings[m].float() for m in names]
        n = len(reps[0])
        scale = self.log_scale.exp()
        terms = {}
        for i, name in enumerate(names):
            anchor, others = reps[i], reps[:i] + reps[i + 1 :]
            if self.negative_sampling == "n":
                # Drawn on the CPU from the global generator, which the runner seeds: the same on every device.
                permutations = [torch.randperm(n).to(anchor.device) for _ in others]
                logits, labels = logits_n(anchor, others, permutations), torch.arange(n, device=anchor.device)
            else:
                logits, labels = logits_n_squared(anchor, others)
            terms[f"anchor:{name}"] = F.cross_entropy(scale * logits, labels)
        return ObjectiveOutput(loss=torch.stack(list(terms.values())).mean(), terms=terms)

    def native_score(self, queries: Mapping[str, torch.Tensor], gallery: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Symile's zero-shot score: ``s * (product of the query modalities) . (product of the gallery modalities)``,
        e.g. the MIP of (a_i, b_i, c_j) to retrieve c from a and b."""
        query = elementwise_product([x.float() for x in queries.values()])
        candidates = elementwise_product([x.float() for x in gallery.values()])
        return self.log_scale.exp() * query @ candidates.T

    def native_directions(self, names: Sequence[str]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """Each modality retrieved from all the others together (with two modalities: both directions)."""
        return [(tuple(other for other in names if other != name), (name,)) for name in names]
