"""Plain float64 references for triangle, centrobind and confu, written from the papers' formulas.

Deliberately naive, as ``objective_reference``: explicit loops over instance pairs, the triangle's area from its
two edge vectors, full determinants of the difference vectors' Gram matrix, centroids summed modality by modality.
They share no code with ``pmrl_bench.builtins.objectives``.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from objective_reference import clip_reference, smoothed_ce


def triangle_area_reference(t: torch.Tensor, v: torch.Tensor, a: torch.Tensor, sqrt: bool) -> torch.Tensor:
    """The paper's area for k = 3: u = t − v, w = t − a, ½·sqrt(|u|²|w|² − (u·w)²); without the root as the code."""
    u, w = t - v, t - a
    inside = (u @ u) * (w @ w) - (u @ w) ** 2
    return 0.5 * inside.sqrt() if sqrt else 0.5 * inside


def simplex_reference(t: torch.Tensor, others: list[torch.Tensor], sqrt: bool) -> torch.Tensor:
    """sqrt(det G)/(k−1)! (or det G/(k−1)!) of the difference vectors t − o_p, from a full determinant."""
    d = torch.stack([t - o for o in others], dim=1)  # (D, k-1)
    det = torch.linalg.det(d.T @ d)
    return (det.sqrt() if sqrt else det) / math.factorial(len(others))


def triangle_measures_reference(emb: dict[str, torch.Tensor], anchor: str, sqrt: bool) -> torch.Tensor:
    others = [emb[m].double() for m in emb if m != anchor]
    t = emb[anchor].double()
    B = len(t)
    rows = []
    for i in range(B):
        row = []
        for j in range(B):
            tuple_j = [o[j] for o in others]
            if len(others) == 2:
                row.append(triangle_area_reference(t[i], *tuple_j, sqrt=sqrt))
            else:
                row.append(simplex_reference(t[i], tuple_j, sqrt))
        rows.append(torch.stack(row))
    return torch.stack(rows)


def triangle_reference(emb, anchor=None, temperature=0.07, eps=0.1, sqrt=False):
    """(a2d, d2a): cross-entropy over −measure/τ, anchor rows and data columns, PyTorch label smoothing."""
    anchor = anchor or next(iter(emb))
    A = triangle_measures_reference(emb, anchor, sqrt)
    return smoothed_ce(-A / temperature, eps), smoothed_ce(-A.T / temperature, eps)


def centrobind_reference(emb, temperature=0.07, eps=0.0, include_self=True, detach=False):
    names = list(emb)
    terms = []
    for m in names:
        members = names if include_self else [n for n in names if n != m]
        c = sum(emb[n].double() for n in members) / len(members)
        c = c / c.norm(dim=-1, keepdim=True)
        if detach:
            c = c.detach()
        terms.append(clip_reference(emb[m], c, 1 / temperature, eps))
    return torch.stack(terms).mean()


def fusion_reference(a: torch.Tensor, b: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """The official fusion MLP without dropout: Linear/ReLU ..., Linear/LeakyReLU(0.2), then L2 normalisation."""
    x = torch.cat([a, b], dim=-1)
    for index, (weight, bias) in enumerate(layers):
        x = x @ weight.T + bias
        x = torch.relu(x) if index < len(layers) - 1 else F.leaky_relu(x, 0.2)
    return x / x.norm(dim=-1, keepdim=True)


def confu_reference(emb, heads, fusion_weight=0.5, temperature=0.07):
    """``heads[(i, j)]``: the fusion's [(W, b), ...] for modalities i < j (task order)."""
    names = list(emb)
    z = [emb[m].double() for m in names]
    pairwise = [clip_reference(z[i], z[j], 1 / temperature) for i, j in itertools.combinations(range(len(z)), 2)]
    if fusion_weight == 0:
        return torch.stack(pairwise).mean()
    fused = []
    for (i, j), layers in heads.items():
        f = fusion_reference(z[i], z[j], layers)
        fused += [clip_reference(f, z[c], 1 / temperature) for c in range(len(z)) if c not in (i, j)]
    total = fusion_weight * sum(fused) + (1 - fusion_weight) * sum(pairwise)
    return total / (len(fused) + len(pairwise))
