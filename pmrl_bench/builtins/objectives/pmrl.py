"""PMRL (Liu, Xia, Ng, Chua; arXiv 2507.17343, TPAMI 2026): principled multimodal representation learning.

Per instance i the k L2-normalised modality embeddings form Z_i ∈ R^{D×k} with singular values
σ_i1 >= ... >= σ_ik and leading left singular vector u_i. As the official code computes it:

* intra: ``CE(σ_i / tau1, target 0)``: the softmax over the instance's singular values toward the largest
  (full alignment means a rank-1 Gram matrix, σ = (√k, 0, ..., 0));
* inter: ``CE(U Uᵀ / tau2, arange(B))`` over the local batch on the leading vectors u_i (a uniformity term:
  the positive logit is the constant 1/tau2, it only repels different instances' leading directions).

Left out: the official ITM term (a VAST cross-encoder scoring text against fused heads, weight 0.1), which needs
modules the harness does not have; ``loss = intra + inter``.

Design choices:

* **k×k Gram route.** The official code calls ``torch.linalg.svd(Z, full_matrices=True)``, which materialises a
  B×D×D matrix. Here ``G_i = Z_iᵀ Z_i`` (k×k, products in the inputs' dtype) is eigendecomposed in float64:
  ``σ = sqrt(λ)``, ``u_1 = Z v_1 / σ_1``. Same values and gradients as the SVD (tests pin both against a
  float64 full SVD), at a fraction of the cost (benchmarks/). One difference in float32: a singular value
  near 0 comes out of a float32 Gram matrix with an absolute error up to ~3e-4 (the SVD's is ~1e-7); its softmax
  weight is then below e^{-(σ1 − σj)/tau1} ≈ e^{-20}, so the loss does not see it. Float64 inputs stay float64.
* **Precision.** All linear algebra runs outside autocast, in float32/float64: there is no half-precision
  SVD or eigh (docs/objectives.md, pitfall P6).
* **Sign of u** (docs/objectives.md, pitfall P2): by default whatever the eigensolver returns, as arbitrary as the
  SVD's (so ``inter`` can differ from a given SVD run's by the sign pattern, never ``intra``).
  ``sign_fix=True`` points u_i toward the instance's modality sum, ``sign(Σ_m u_iᵀ z_i^m) = sign(Σ_m v_1m)``
  (ties, where u is orthogonal to the sum, go to the modality with the largest coefficient).
* **Near-equal singular values** (docs/objectives.md, pitfall P3): the gradient through u_1 has 1/(σ1² − σj²) factors,
  infinite when σ1 = σ2, e.g. at exactly orthogonal modalities. ``grad_guard=ε > 0`` replaces each by
  ``g/(g² + ε²)`` (bounded by 1/(2ε)); the loss value is unchanged. Default 0: the exact (faithful) gradient,
  so an exactly degenerate batch gives a non-finite gradient and the run is recorded as diverged.
* Only the gaps to the *leading* eigenvalue enter the gradient, so degenerate trailing singular values (a fully
  aligned instance, σ = (√k, 0, 0)) are harmless; a zero column does not give the NaN that the official
  reduced-SVD backward gives (docs/objectives.md, pitfall P4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pmrl_bench.builtins.objectives._common import check_at_least, check_positive, stack_modalities
from pmrl_bench.builtins.objectives._linalg import leading_eigh_grad
from pmrl_bench.components import ObjectiveOutput

# Eigenvalues below this are treated as 0 for the square root (σ floor 1e-6): sqrt has an infinite slope at 0.
EIGENVALUE_FLOOR = 1e-12
# |Σ_m v_1m| below this counts as "u orthogonal to the modality sum" for the sign fix.
SIGN_TIE = 1e-9


@dataclass
class Spectrum:
    """Per-instance singular values (B, k) descending, float64, and leading left singular vectors (B, D)."""

    sigma: torch.Tensor
    u: torch.Tensor


class _StackSpectrum(torch.autograd.Function):
    """σ and u_1 of every instance from its k×k Gram matrix, with a hand-written backward.

    Forward: ``G = E Eᵀ``, ``λ, V = eigh(G)`` in float64, ``σ = sqrt(max(λ, floor))``, ``u = Eᵀ v_1 / σ_1``.
    Backward: the chain written out with elementwise products and one small batched matmul per step; letting
    autograd differentiate the batched (B, k, D) products instead costs ~3× more (strided bmm with k <= 5).
    """

    generate_vmap_rule = True  # batched torch ops throughout: vmap maps them (seeds trained as one model)

    @staticmethod
    def forward(E: torch.Tensor, guard: float, sign_fix: bool):  # type: ignore[override]
        eigenvalues, V = torch.linalg.eigh((E @ E.mT).double())
        eigenvalues, V = eigenvalues.flip(-1), V.flip(-1).clone()  # descending
        if sign_fix:
            V[..., 0] *= sign_toward_modality_sum(V[..., 0])
        sigma = eigenvalues.clamp_min(EIGENVALUE_FLOOR).sqrt()
        w = V[..., 0] / sigma[:, :1]  # u = Σ_m w_m z^m
        u = (w.to(E.dtype).unsqueeze(1) @ E).squeeze(1)
        return sigma, u, eigenvalues, V, w  # the last three only for the backward

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # type: ignore[override]
        E, guard, _ = inputs
        sigma, _, eigenvalues, V, w = output
        ctx.save_for_backward(E, eigenvalues, V, sigma, w)
        ctx.guard = guard
        ctx.mark_non_differentiable(eigenvalues, V, w)
        ctx.set_materialize_grads(False)  # an unused output must not feed 0 * (1/0) = NaN into the backward

    @staticmethod
    def backward(ctx, grad_sigma: torch.Tensor | None, grad_u: torch.Tensor | None,  # type: ignore[override]
                 *_unused: torch.Tensor | None):
        E, eigenvalues, V, sigma, w = ctx.saved_tensors
        grad_sigma = torch.zeros_like(sigma) if grad_sigma is None else grad_sigma.clone()
        grad_v1 = None
        if grad_u is not None:
            grad_w = (E * grad_u.unsqueeze(1)).sum(-1).double()  # elementwise: 3x faster than a batched matvec
            grad_v1 = grad_w / sigma[:, :1]  # w = v_1 / σ_1
            grad_sigma[:, 0] -= (grad_w * w).sum(-1) / sigma[:, 0]
        # σ = sqrt(max(λ, floor)): no gradient below the floor
        grad_values = torch.where(eigenvalues > EIGENVALUE_FLOOR, grad_sigma / (2 * sigma), 0.0)
        grad_G = leading_eigh_grad(eigenvalues, V, grad_values, grad_v1, ctx.guard)
        grad_E = (2 * grad_G).to(E.dtype) @ E  # G = E Eᵀ and grad_G is symmetric
        if grad_u is not None:  # u = Eᵀ w: add the outer product w ⊗ g_u in place, one pass over (B, k, D)
            grad_E.addcmul_(w.to(E.dtype).unsqueeze(-1), grad_u.unsqueeze(1))
        return grad_E, None, None


def instance_spectrum(E: torch.Tensor, grad_guard: float = 0.0, sign_fix: bool = False) -> Spectrum:
    """Singular values and leading left singular vectors of every instance of ``E`` (B, k, D) (rows z_i^m)."""
    check_at_least(0, grad_guard=grad_guard)
    sigma, u, *_ = _StackSpectrum.apply(E, float(grad_guard), bool(sign_fix))
    return Spectrum(sigma, u)


def sign_toward_modality_sum(v1: torch.Tensor) -> torch.Tensor:
    """±1 per instance that points u toward the modality sum: u_iᵀ Σ_m z_i^m = σ_1 Σ_m v_1m.

    When u is orthogonal to the sum (e.g. k = 2 with a negative cosine: u ∝ z¹ − z²), the modality with the
    largest coefficient gets a positive one instead. Piecewise constant, so no gradient flows through it.
    """
    total = v1.sum(-1, keepdim=True)
    largest = v1.gather(-1, v1.abs().argmax(-1, keepdim=True))
    reference = torch.where(total.abs() > SIGN_TIE, total, largest)
    return torch.where(reference < 0, -1.0, 1.0).to(v1.dtype)


def intra_term(sigma: torch.Tensor, tau1: float) -> torch.Tensor:
    """Softmax cross-entropy of σ/tau1 toward the largest singular value (class 0)."""
    targets = torch.zeros(len(sigma), dtype=torch.long, device=sigma.device)
    return F.cross_entropy(sigma / tau1, targets)


class _SelfSimilarity(torch.autograd.Function):
    """``u uᵀ`` with the backward ``(g + gᵀ) u``: one (B, B)×(B, D) product where autograd would do two."""

    generate_vmap_rule = True

    @staticmethod
    def forward(u: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return u @ u.T

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # type: ignore[override]
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (u,) = ctx.saved_tensors
        return (grad + grad.T) @ u


def inter_term(u: torch.Tensor, tau2: float) -> torch.Tensor:
    """Cross-entropy of u uᵀ/tau2 toward the diagonal over the local batch."""
    return F.cross_entropy(_SelfSimilarity.apply(u) / tau2, torch.arange(len(u), device=u.device))


class PMRLLoss(nn.Module):
    """PMRL: softmax over singular values toward the largest, plus contrast of leading singular vectors (no ITM).

    Args:
        tau1: temperature of the softmax over each instance's singular values (the intra term).
        tau2: temperature of the contrast between instances' leading singular vectors (the inter term).
        sign_fix: point each leading vector toward its instance's modality sum; false keeps the solver's sign.
        grad_guard: ε > 0 bounds the gradient's 1/(σ1² − σj²) factors by 1/(2ε); 0 is the exact gradient.
    """

    supports_seed_batch = True

    def __init__(self, tau1: float = 0.05, tau2: float = 0.1, sign_fix: bool = False, grad_guard: float = 0.0) -> None:
        super().__init__()
        check_positive(tau1=tau1, tau2=tau2)
        check_at_least(0, note="0 = exact gradient", grad_guard=grad_guard)
        self.tau1, self.tau2 = float(tau1), float(tau2)
        self.sign_fix, self.grad_guard = bool(sign_fix), float(grad_guard)

    def forward(self, embeddings: Mapping[str, torch.Tensor]) -> ObjectiveOutput:
        device_type = next(iter(embeddings.values())).device.type
        with torch.autocast(device_type=device_type, enabled=False):
            E = stack_modalities(embeddings)  # (B, k, D)
            spectrum = instance_spectrum(E, self.grad_guard, self.sign_fix)
            intra = intra_term(spectrum.sigma, self.tau1).to(E.dtype)
            inter = inter_term(spectrum.u, self.tau2)
        return ObjectiveOutput(loss=intra + inter, terms={"intra": intra, "inter": inter})


class PMRLIntra(nn.Module):
    """Ablation: PMRL's singular-value (intra) term alone, without the contrast of leading vectors.

    Args:
        tau1: temperature of the softmax over each instance's singular values.
    """

    supports_seed_batch = True

    def __init__(self, tau1: float = 0.05) -> None:
        super().__init__()
        check_positive(tau1=tau1)
        self.tau1 = float(tau1)

    def forward(self, embeddings: Mapping[str, torch.Tensor]) -> ObjectiveOutput:
        device_type = next(iter(embeddings.values())).device.type
        with torch.autocast(device_type=device_type, enabled=False):
            E = stack_modalities(embeddings)
            intra = intra_term(instance_spectrum(E).sigma, self.tau1).to(E.dtype)
        return ObjectiveOutput(loss=intra, terms={"intra": intra})
