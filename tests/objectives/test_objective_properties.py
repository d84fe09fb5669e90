"""Property tests: every objective's loss and gradient stay finite on degenerate inputs, or it raises a clear error.

Input families (docs/objectives.md, pitfalls P1-P4, P8): random; duplicated modalities and instances; collinear
(every modality ± one vector); near-equal spectrum (orthonormal modalities plus a tiny perturbation); zero
modalities and all-zero instances. Faithful PMRL may lose its gradient where the leading singular value is
exactly degenerate; its guarded variant may not, and the tests show both.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pmrl_bench
from pmrl_bench.builtins.objectives._common import stack_modalities
from pmrl_bench.builtins.objectives._linalg import leading_eigh
from pmrl_bench.evaluation.native import native_directions

KINDS = ("random", "duplicated", "duplicated_instances", "collinear", "near_equal", "zero", "zero_instance")

# Every objective configuration whose gradient must always be finite.
ALWAYS_FINITE = [
    ("infonce", {}),
    ("infonce", {"label_smoothing": 0.1}),
    ("anchor", {}),
    ("anchor", {"reduction": "sum"}),
    ("gram", {}),
    ("gram", {"precision": "float32"}),
    ("pmrl-intra", {}),
    ("volume", {}),
    ("volume", {"inter": True, "grad_guard": 1e-3}),
    ("pmrl", {"grad_guard": 1e-3}),
    ("pmrl", {"grad_guard": 1e-3, "sign_fix": True}),
]


@st.composite
def embeddings(draw):
    """A batch of one input family, as leaf tensors ``{m0: (B, D), ...}``."""
    kind = draw(st.sampled_from(KINDS))
    k = draw(st.integers(2, 4))
    B = draw(st.integers(2, 6))
    D = draw(st.integers(k, 8))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    Z = F.normalize(torch.randn(B, D, k, generator=generator, dtype=torch.float64), dim=1)
    if kind == "duplicated":
        Z[:, :, 1] = Z[:, :, 0]
    elif kind == "duplicated_instances":
        Z[1:] = Z[0]
    elif kind == "collinear":
        signs = torch.randint(0, 2, (B, 1, k), generator=generator).double() * 2 - 1
        Z = Z[:, :, :1] * signs
    elif kind == "near_equal":
        eps = draw(st.sampled_from([0.0, 1e-9, 1e-6, 1e-3]))
        Q = torch.linalg.qr(torch.randn(B, D, k, generator=generator, dtype=torch.float64))[0]
        Z = F.normalize(Q + eps * torch.randn(B, D, k, generator=generator, dtype=torch.float64), dim=1)
    elif kind == "zero":
        Z[:, :, -1] = 0.0
    elif kind == "zero_instance":
        Z[0] = 0.0
    return kind, {f"m{i}": Z[:, :, i].to(dtype).clone().requires_grad_() for i in range(k)}


def _loss_and_grads(name, params, emb):
    out = pmrl_bench.create_objective(name, **params)(emb)
    grads = torch.autograd.grad(out.loss, list(emb.values()), allow_unused=True)
    return out, [g for g in grads if g is not None]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(embeddings())
def test_loss_terms_and_gradients_are_finite(case):
    kind, emb = case
    for name, params in ALWAYS_FINITE:
        out, grads = _loss_and_grads(name, params, emb)
        assert torch.isfinite(out.loss), (name, params, kind)
        assert all(torch.isfinite(t) for t in out.terms.values()), (name, params, kind)
        assert all(torch.isfinite(g).all() for g in grads), (name, params, kind)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(embeddings())
def test_faithful_pmrl_gradient_is_finite_unless_the_leading_eigenvalue_is_exactly_degenerate(case):
    kind, emb = case
    out, grads = _loss_and_grads("pmrl", {}, emb)
    assert torch.isfinite(out.loss), kind
    E = stack_modalities({m: e.detach() for m, e in emb.items()})
    eigenvalues, _ = leading_eigh((E @ E.mT).double())  # the Gram matrix as the objective computes it
    if (eigenvalues[:, 0] - eigenvalues[:, 1]).min() > 0:
        assert all(torch.isfinite(g).all() for g in grads), kind


@settings(max_examples=40, deadline=None)
@given(embeddings())
def test_native_volume_scores_are_finite_and_never_below_minus_one(case):
    kind, emb = case
    emb = {m: e.detach() for m, e in emb.items()}
    for objective in (pmrl_bench.create_objective("gram"), pmrl_bench.create_objective("volume")):
        for queries, gallery in native_directions(objective, list(emb)):
            scores = objective.native_score({m: emb[m] for m in queries}, {m: emb[m] for m in gallery})
            assert torch.isfinite(scores).all(), kind
            assert bool(((scores <= 0) & (scores >= -1 - 1e-5)).all()), kind  # -Vol, Vol in [0, 1] for |z| <= 1


@settings(max_examples=40, deadline=None)
@given(embeddings(), st.sampled_from([0.01, 0.05, 0.2]))
def test_intra_stays_in_its_closed_form_range(case, tau1):
    kind, emb = case
    k = len(emb)
    if kind in ("zero", "zero_instance"):
        return  # the range assumes unit columns (sum of sigma^2 = k)
    intra = pmrl_bench.create_objective("pmrl-intra", tau1=tau1)(emb).loss.item()
    low = math.log1p((k - 1) * math.exp(-math.sqrt(k) / tau1))
    assert low - 1e-6 <= intra <= math.log(k) + 1e-6, kind


def test_exactly_degenerate_cases_faithful_vs_guarded():
    """The two exact degeneracies of the leading singular value: orthonormal modalities and an all-zero instance."""
    eye = torch.eye(3, dtype=torch.float64)
    orthonormal = {m: eye[i].repeat(4, 1).requires_grad_() for i, m in enumerate("abc")}
    zero_instance = {m: F.normalize(torch.randn(4, 5, dtype=torch.float64), dim=-1) for m in "abc"}
    for z in zero_instance.values():
        z[0] = 0.0
        z.requires_grad_()
    for emb in (orthonormal, zero_instance):
        out, grads = _loss_and_grads("pmrl", {}, emb)
        assert torch.isfinite(out.loss)
        assert not all(torch.isfinite(g).all() for g in grads)
        out, grads = _loss_and_grads("pmrl", {"grad_guard": 1e-3}, emb)
        assert torch.isfinite(out.loss) and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", ["pmrl", "infonce", "anchor", "gram", "pmrl-intra", "volume"])
def test_one_modality_is_a_clear_error(name):
    with pytest.raises(ValueError, match="at least 2 modalities"):
        pmrl_bench.create_objective(name)({"m0": F.normalize(torch.randn(4, 3), dim=-1)})
