"""PMRL (and its intra-only ablation) against the official full-SVD formulation, in float64."""

from __future__ import annotations

import math

import pytest
import torch
from objective_reference import pmrl_reference, random_embeddings, unit

import pmrl_bench
from pmrl_bench.builtins.objectives._common import stack_modalities
from pmrl_bench.builtins.objectives.pmrl import instance_spectrum

SHAPES = [(2, 3, 2), (5, 4, 3), (8, 16, 4), (16, 64, 3), (6, 7, 5)]  # (B, D, k), D >= k and D < k too rarely


def _grads(loss, emb):
    return torch.autograd.grad(loss, list(emb.values()))


def _svd_signs(emb):
    """Signs that map the official SVD's leading vectors onto ours (both are arbitrary; the values must agree)."""
    E = stack_modalities({m: e.detach() for m, e in emb.items()})  # (B, k, D)
    ours = instance_spectrum(E).u
    U = torch.linalg.svd(E.mT, full_matrices=False)[0][:, :, 0]
    dots = (ours * U).sum(-1)
    assert torch.allclose(dots.abs(), torch.ones_like(dots), atol=1e-10)  # same vectors up to sign
    return torch.sign(dots)


@pytest.mark.parametrize("B,D,k", SHAPES)
@pytest.mark.parametrize("sign_fix", [False, True])
def test_pmrl_loss_and_gradient_match_full_svd_reference(B, D, k, sign_fix):
    emb = random_embeddings(B, D, k, seed=B + D + k)
    out = pmrl_bench.create_objective("pmrl", tau1=0.05, tau2=0.1, sign_fix=sign_fix)(emb)
    signs = None if sign_fix else _svd_signs(emb)
    intra, inter = pmrl_reference(emb, 0.05, 0.1, signs=signs, sign_fix=sign_fix)
    assert out.terms["intra"].item() == pytest.approx(intra.item(), abs=1e-10)
    assert out.terms["inter"].item() == pytest.approx(inter.item(), abs=1e-10)
    for ours, ref in zip(_grads(out.loss, emb), _grads(intra + inter, emb)):
        torch.testing.assert_close(ours, ref, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("B,D,k", SHAPES[:3])
def test_pmrl_intra_ablation_is_the_intra_term_with_its_gradient(B, D, k):
    emb = random_embeddings(B, D, k, seed=7)
    out = pmrl_bench.create_objective("pmrl-intra", tau1=0.02)(emb)
    intra, _ = pmrl_reference(emb, 0.02, 0.1)
    assert set(out.terms) == {"intra"}
    assert out.loss.item() == pytest.approx(intra.item(), abs=1e-10)
    for ours, ref in zip(_grads(out.loss, emb), _grads(intra, emb)):
        torch.testing.assert_close(ours, ref, rtol=1e-7, atol=1e-9)


def test_float32_inputs_agree_with_float64_reference():
    emb64 = random_embeddings(32, 128, 4, seed=3)
    emb32 = {m: e.detach().float().requires_grad_() for m, e in emb64.items()}
    out = pmrl_bench.create_objective("pmrl", sign_fix=True)(emb32)
    intra, inter = pmrl_reference(emb64, sign_fix=True)
    assert out.loss.dtype == torch.float32
    assert out.loss.item() == pytest.approx((intra + inter).item(), abs=1e-5)


def test_intra_is_invariant_to_sign_flips_and_order():
    emb = {m: e.detach() for m, e in random_embeddings(16, 32, 3, seed=11).items()}
    objective = pmrl_bench.create_objective("pmrl-intra")
    base = objective(emb).loss.item()
    flipped = {"m2": -emb["m2"], "m0": emb["m0"], "m1": -emb["m1"]}
    assert objective(flipped).loss.item() == pytest.approx(base, abs=1e-12)


def test_inter_is_log_b_when_every_leading_vector_is_the_same():
    x = unit(1, 8).repeat(6, 1)  # six identical instances; sign_fix makes their u identical, not just ±
    y = unit(1, 8, seed=1).repeat(6, 1)
    out = pmrl_bench.create_objective("pmrl", sign_fix=True)({"a": x, "b": y})
    assert out.terms["inter"].item() == pytest.approx(math.log(6), abs=1e-9)


def test_sign_fix_points_u_toward_the_modality_sum():
    E = stack_modalities({m: e.detach() for m, e in random_embeddings(64, 8, 3, seed=5).items()})
    u = instance_spectrum(E, sign_fix=True).u
    assert bool(((u.unsqueeze(1) * E).sum((1, 2)) > 0).all())
    raw = instance_spectrum(E).u
    assert torch.allclose(raw.abs(), u.abs())


def test_grad_guard_leaves_value_and_well_separated_gradient_alone():
    emb = random_embeddings(8, 6, 3, seed=2)  # D=6: well-separated spectra
    exact = pmrl_bench.create_objective("pmrl", sign_fix=True)(emb)
    guarded = pmrl_bench.create_objective("pmrl", sign_fix=True, grad_guard=1e-6)(emb)
    assert guarded.loss.item() == exact.loss.item()
    for g, e in zip(_grads(guarded.loss, emb), _grads(exact.loss, emb)):
        torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-12)


def test_exactly_equal_singular_values_faithful_gradient_is_not_finite_guarded_is():
    # Orthonormal modalities: G = I, sigma1 = sigma2 = sigma3 = 1, u_1 is not differentiable.
    eye = torch.eye(4, dtype=torch.float64)
    emb = {m: eye[i].repeat(5, 1).requires_grad_() for i, m in enumerate("abc")}
    faithful = pmrl_bench.create_objective("pmrl")(emb)
    assert torch.isfinite(faithful.loss)
    assert not all(torch.isfinite(g).all() for g in _grads(faithful.loss, emb))
    guarded = pmrl_bench.create_objective("pmrl", grad_guard=1e-3)(emb)
    assert guarded.loss.item() == faithful.loss.item()
    assert all(torch.isfinite(g).all() for g in _grads(guarded.loss, emb))


def near_equal_spectrum(B: int, D: int, k: int, gap: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """Per instance: orthonormal columns plus a perturbation of size ``gap``, so sigma ~ (1, ..., 1) with gaps ~ gap."""
    generator = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(B, D, k, generator=generator, dtype=torch.float64))[0]
    Z = torch.nn.functional.normalize(Q + gap * torch.randn(B, D, k, generator=generator, dtype=torch.float64), dim=1)
    return {f"m{i}": Z[:, :, i].clone().requires_grad_() for i in range(k)}


def test_near_equal_spectrum_gradient_grows_as_one_over_the_gap_unless_guarded():
    """docs/objectives.md, pitfall P3: |grad| ~ 1/gap for the faithful loss; the guard caps it, the value stays."""
    norms = {}
    for gap in (1e-2, 1e-4, 1e-6):
        for guard in (0.0, 1e-2):
            emb = near_equal_spectrum(8, 6, 3, gap)
            loss = pmrl_bench.create_objective("pmrl", grad_guard=guard)(emb).loss
            norms[gap, guard] = float(torch.cat([g.flatten() for g in _grads(loss, emb)]).norm())
    assert norms[1e-6, 0.0] > 1e3 * norms[1e-2, 0.0]  # four decades of gap, at least three of gradient
    assert norms[1e-6, 1e-2] < 2 * norms[1e-2, 1e-2]


def test_zero_modality_gives_finite_loss_and_gradient():
    """docs/objectives.md, pitfall P4: the official reduced-SVD backward is NaN at a zero column, the Gram route not."""
    emb = random_embeddings(6, 8, 3, seed=9)
    emb["m2"] = torch.zeros(6, 8, dtype=torch.float64, requires_grad=True)
    out = pmrl_bench.create_objective("pmrl")(emb)
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(g).all() for g in _grads(out.loss, emb))


def test_fully_aligned_instances_have_finite_gradients_despite_equal_trailing_singular_values():
    x = unit(6, 8).requires_grad_()
    emb = {"a": x, "b": x * 1, "c": x * 1}  # sigma = (sqrt 3, 0, 0): the two zeros coincide
    loss = pmrl_bench.create_objective("pmrl")(emb).loss
    (grad,) = torch.autograd.grad(loss, [x])
    assert torch.isfinite(grad).all()


def test_half_precision_inputs_run_in_float32_outside_autocast():
    emb = {m: e.detach().half() for m, e in random_embeddings(8, 16, 3).items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = pmrl_bench.create_objective("pmrl")(emb)
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)


@pytest.mark.parametrize(
    "params, match",
    [({"tau1": 0.0}, "tau1"), ({"tau2": -1.0}, "tau2"), ({"grad_guard": -1e-3}, "grad_guard")],
)
def test_bad_parameters_are_usage_errors(params, match):
    with pytest.raises(pmrl_bench.errors.UsageError, match=match):
        pmrl_bench.create_objective("pmrl", **params)


def test_one_modality_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 2 modalities"):
        pmrl_bench.create_objective("pmrl")({"a": unit(4, 3)})
