"""Plain float64 references written straight from the formulas (docs/objectives.md).

Deliberately naive: full SVDs, full B×B×k×k determinants, explicit loops over pairs. They share no code with
``pmrl_bench.builtins.objectives``, so agreement is evidence, not tautology.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F


def unit(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=generator, dtype=torch.float64), dim=-1).to(dtype)


def random_embeddings(B: int, D: int, k: int, seed: int = 0, dtype=torch.float64) -> dict[str, torch.Tensor]:
    return {f"m{i}": unit(B, D, seed=seed * 100 + i, dtype=dtype).requires_grad_() for i in range(k)}


def pmrl_reference(emb, tau1=0.05, tau2=0.1, signs=None, sign_fix=False, full_matrices=True):
    """PMRL as the official code computes it: ``torch.linalg.svd(Z, full_matrices=True)``, intra + inter.

    ``signs`` (B,) multiplies the leading vectors, to compare with an implementation whose (arbitrary) SVD
    signs differ; ``sign_fix`` points each u_i toward its instance's modality sum instead.
    """
    Z = torch.stack([e.double() for e in emb.values()], dim=-1)  # (B, D, k)
    U, S, _ = torch.linalg.svd(Z, full_matrices=full_matrices)
    intra = torch.stack([-S[i, 0] / tau1 + torch.logsumexp(S[i] / tau1, 0) for i in range(len(S))]).mean()
    u = U[:, :, 0]
    if sign_fix:  # toward the modality sum; if orthogonal to it, toward the most aligned modality
        coefficients = (u.unsqueeze(-1) * Z).sum(1)  # (B, k): u_i . z_i^m
        total = coefficients.sum(-1)
        largest = coefficients.gather(-1, coefficients.abs().argmax(-1, keepdim=True)).squeeze(-1)
        signs = torch.where(torch.where(total.abs() > 1e-9, total, largest) < 0, -1.0, 1.0).double()
    if signs is not None:
        u = u * signs[:, None]
    logits = u @ u.T / tau2
    inter = torch.stack([-logits[i, i] + torch.logsumexp(logits[i], 0) for i in range(len(u))]).mean()
    return intra, inter


def smoothed_ce(logits: torch.Tensor, eps: float) -> torch.Tensor:
    """Row-wise CE toward the diagonal with PyTorch-style label smoothing, written out."""
    logp = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    n = len(logits)
    return torch.stack([-(1 - eps) * logp[i, i] - eps * logp[i].mean() for i in range(n)]).mean()


def clip_reference(a, b, scale, eps=0.0):
    logits = scale * a.double() @ b.double().T
    return 0.5 * (smoothed_ce(logits, eps) + smoothed_ce(logits.T, eps))


def infonce_reference(emb, temperature=0.07, eps=0.0):
    pairs = [clip_reference(emb[m], emb[n], 1 / temperature, eps) for m, n in itertools.combinations(emb, 2)]
    return torch.stack(pairs).mean()


def anchor_reference(emb, anchor, temperature=0.07, reduction="mean", eps=0.0):
    pairs = torch.stack([clip_reference(emb[anchor], z, 1 / temperature, eps) for m, z in emb.items() if m != anchor])
    return pairs.mean() if reduction == "mean" else pairs.sum()


def gram_volumes_reference(anchor, others):
    """V_ij = sqrt(det G_ij) from the full k×k Gram matrix of (a_i, o_j^1, ...), float64 det."""
    B = len(anchor)
    V = torch.empty(B, len(others[0]), dtype=torch.float64)
    for i in range(B):
        for j in range(len(others[0])):
            A = torch.stack([anchor[i].double()] + [o[j].double() for o in others], dim=1)  # (D, k)
            V[i, j] = torch.linalg.det(A.T @ A).abs().sqrt()
    return V


def gram_reference(emb, anchor=None, temperature=0.07, eps=0.1):
    names = list(emb)
    anchor = anchor or names[0]
    V = gram_volumes_reference(emb[anchor], [emb[m] for m in names if m != anchor])
    a2d = smoothed_ce(-V / temperature, eps)
    d2a = smoothed_ce(-V.T / temperature, eps)
    return a2d, d2a


def volume_reference(emb):
    """mean_i Π_j σ_ij from singular values of the (D, k) stacks."""
    Z = torch.stack([e.double() for e in emb.values()], dim=-1)
    return torch.linalg.svdvals(Z).prod(-1).mean()


def intra_bounds(k: int, tau1: float) -> tuple[float, float]:
    """[log(1 + (k-1) e^{-√k/τ1}), log k] (docs/objectives.md#pmrl-sanity)."""
    return math.log1p((k - 1) * math.exp(-math.sqrt(k) / tau1)), math.log(k)
