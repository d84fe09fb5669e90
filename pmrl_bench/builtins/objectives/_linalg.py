"""Small-matrix linear algebra for the spectral and volume objectives, with gradients that stay finite.

Two tools, both working on k×k Gram matrices (k = number of modalities, 2..7) instead of D-dimensional stacks:

* :func:`leading_eigh`: the eigenvalues of a batch of symmetric matrices and the *leading* eigenvector, with a
  hand-written backward that involves only the gaps between the leading eigenvalue and the others (the gradient
  of v1 is ``sum_j v_j v_j^T dG v1 / (λ1 - λj)``). ``torch.linalg.eigh``'s own backward divides by *every*
  pairwise gap, so it turns 0/0 into NaN whenever two trailing eigenvalues coincide (e.g. λ = (3, 0, 0) for a
  perfectly aligned instance) even though v1 is perfectly well defined there. An optional guard replaces
  ``1/g`` by the Lorentzian-broadened ``g / (g² + ε²)`` (bounded by ``1/(2ε)``), the usual fix for the
  ``1/(σ1² − σ2²)`` blow-up at near-equal singular values (docs/objectives.md, pitfall P3).
* :func:`det_small` / :func:`adjugate_small`: determinants and adjugates by cofactor expansion. They are
  polynomials in the entries, so their gradients are finite for singular matrices too, where ``det``'s backward
  (through an inverse or LU) is not (docs/objectives.md, pitfall P4: duplicated or zero vectors).
"""

from __future__ import annotations

import torch

from pmrl_bench.builtins.objectives._common import check_at_least

# Largest matrix the cofactor expansion handles: an n×n determinant costs n! products per matrix.
MAX_COFACTOR_SIZE = 7
# Floor of a determinant before its square root (volumes, areas): roots below sqrt(DET_FLOOR) = 1e-6 count as 0,
# since sqrt has an infinite slope at 0.
DET_FLOOR = 1e-12


class _LeadingEigh(torch.autograd.Function):
    """Eigenvalues (descending) and leading eigenvector of symmetric matrices, with a gap-only backward.

    Written with ``setup_context`` and ``generate_vmap_rule``: forward and backward are batched torch ops, so
    ``torch.func.vmap`` maps them when the seeds of a configuration train as one model.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(gram: torch.Tensor, guard: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # type: ignore[override]
        eigenvalues, eigenvectors = torch.linalg.eigh(gram)  # ascending
        eigenvalues, eigenvectors = eigenvalues.flip(-1), eigenvectors.flip(-1)
        return eigenvalues, eigenvectors[..., 0], eigenvectors

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # type: ignore[override]
        eigenvalues, _, eigenvectors = output
        ctx.save_for_backward(eigenvalues, eigenvectors)
        ctx.guard = inputs[1]
        ctx.mark_non_differentiable(eigenvectors)  # every eigenvector, for the backward only
        ctx.set_materialize_grads(False)  # an unused output must not feed 0 * (1/0) = NaN into the backward

    @staticmethod
    def backward(ctx, grad_values: torch.Tensor | None, grad_vector: torch.Tensor | None,  # type: ignore[override]
                 _grad_vectors: torch.Tensor | None):
        eigenvalues, V = ctx.saved_tensors
        return leading_eigh_grad(eigenvalues, V, grad_values, grad_vector, ctx.guard), None


def leading_eigh_grad(
    eigenvalues: torch.Tensor,
    V: torch.Tensor,
    grad_values: torch.Tensor | None,
    grad_vector: torch.Tensor | None,
    guard: float = 0.0,
) -> torch.Tensor:
    """Gradient w.r.t. a symmetric G of a loss with gradients ``grad_values`` (w.r.t. its eigenvalues, descending)
    and ``grad_vector`` (w.r.t. the leading eigenvector ``V[..., 0]``); symmetric, (..., k, k)."""
    grad = torch.zeros_like(V)
    if grad_values is not None:  # dλ_i = v_i^T dG v_i
        grad = (V * grad_values.unsqueeze(-2)) @ V.mT
    if grad_vector is not None:  # dv_1 = Σ_{j>1} v_j (v_j^T dG v_1) / (λ_1 - λ_j)
        gap = eigenvalues[..., :1] - eigenvalues[..., 1:]  # (..., k-1), >= 0
        inverse_gap = 1.0 / gap if guard == 0 else gap / (gap * gap + guard**2)
        coefficients = (V[..., 1:].mT @ grad_vector.unsqueeze(-1)).squeeze(-1) * inverse_gap
        outer = (V[..., 1:] @ coefficients.unsqueeze(-1)) @ V[..., :1].mT  # (Σ_j c_j v_j) v_1^T
        grad = grad + 0.5 * (outer + outer.mT)  # G is symmetric: return the symmetric gradient
    return grad


def leading_eigh(gram: torch.Tensor, guard: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(eigenvalues (..., k) descending, leading eigenvector (..., k))`` of symmetric ``gram`` (..., k, k).

    ``guard == 0`` gives the exact gradient, which is infinite when λ1 = λ2 (the leading eigenvector is not
    differentiable there); ``guard > 0`` bounds every ``1/(λ1 − λj)`` factor by ``1/(2·guard)``. The forward
    value does not depend on the guard. The sign of the eigenvector is whatever LAPACK/cuSOLVER returns.
    """
    check_at_least(0, guard=guard)
    eigenvalues, leading, _ = _LeadingEigh.apply(gram, float(guard))
    return eigenvalues, leading


def _minor(matrix: torch.Tensor, row: int, col: int) -> torch.Tensor:
    n = matrix.shape[-1]
    rows = [r for r in range(n) if r != row]
    cols = [c for c in range(n) if c != col]
    return matrix[..., rows, :][..., :, cols]


def det_small(matrix: torch.Tensor) -> torch.Tensor:
    """Determinant of (..., n, n) by cofactor expansion: a polynomial, so finite gradients even when singular."""
    n = matrix.shape[-1]
    if n > MAX_COFACTOR_SIZE:
        size = f"{MAX_COFACTOR_SIZE}x{MAX_COFACTOR_SIZE}"
        raise ValueError(f"cofactor determinants support matrices up to {size}, got {n}x{n}")
    if n == 1:
        return matrix[..., 0, 0]
    if n == 2:
        return matrix[..., 0, 0] * matrix[..., 1, 1] - matrix[..., 0, 1] * matrix[..., 1, 0]
    if n == 3:
        m = matrix
        return (
            m[..., 0, 0] * (m[..., 1, 1] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 1])
            - m[..., 0, 1] * (m[..., 1, 0] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 0])
            + m[..., 0, 2] * (m[..., 1, 0] * m[..., 2, 1] - m[..., 1, 1] * m[..., 2, 0])
        )
    return sum((-1) ** col * matrix[..., 0, col] * det_small(_minor(matrix, 0, col)) for col in range(n))


def adjugate_small(matrix: torch.Tensor) -> torch.Tensor:
    """Adjugate (transposed cofactor matrix) of (..., n, n); ``adj(M) = det(M) M⁻¹`` but defined for singular M."""
    n = matrix.shape[-1]
    if n == 1:
        return torch.ones_like(matrix)
    if n == 2:
        a, b, c, d = matrix[..., 0, 0], matrix[..., 0, 1], matrix[..., 1, 0], matrix[..., 1, 1]
        return torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2)
    cofactors = [
        torch.stack([(-1) ** (row + col) * det_small(_minor(matrix, row, col)) for col in range(n)], -1)
        for row in range(n)
    ]
    return torch.stack(cofactors, -2).mT
