"""GRAM and the volume ablation against full k×k determinants and singular values, in float64."""

from __future__ import annotations

import math

import pytest
import torch
from objective_reference import gram_reference, gram_volumes_reference, random_embeddings, unit, volume_reference

import pmrl_bench
import pmrl_bench.evaluation.native
from pmrl_bench.builtins.objectives._linalg import adjugate_small, det_small
from pmrl_bench.builtins.objectives.gram import volume_matrix

SHAPES = [(2, 3, 2), (6, 5, 3), (5, 8, 4), (4, 9, 5)]


def _grads(loss, emb):
    return torch.autograd.grad(loss, list(emb.values()))


@pytest.mark.parametrize("B,D,k", SHAPES)
def test_volume_matrix_matches_full_determinants(B, D, k):
    emb = {m: e.detach() for m, e in random_embeddings(B, D, k, seed=B * D).items()}
    anchor, *others = emb.values()
    V, negative = volume_matrix(anchor, others)
    torch.testing.assert_close(V, gram_volumes_reference(anchor, others), rtol=1e-9, atol=1e-12)
    assert not negative.any()


@pytest.mark.parametrize("B,D,k", SHAPES)
@pytest.mark.parametrize("anchor_index", [0, -1])
def test_gram_loss_and_gradient_match_reference(B, D, k, anchor_index):
    emb = random_embeddings(B, D, k, seed=B + D + k)
    anchor = list(emb)[anchor_index]
    objective = pmrl_bench.create_objective("gram", anchor=anchor, temperature=0.07, learnable=False)
    out = objective(emb)
    a2d, d2a = gram_reference(emb, anchor, 1 / objective.logit_scale().item(), eps=0.1)  # the float32 scale
    assert out.terms["a2d"].item() == pytest.approx(a2d.item(), abs=1e-10)
    assert out.terms["d2a"].item() == pytest.approx(d2a.item(), abs=1e-10)
    assert out.loss.item() == pytest.approx(0.5 * (a2d + d2a).item(), abs=1e-10)
    for ours, expected in zip(_grads(out.loss, emb), _grads(0.5 * (a2d + d2a), emb)):
        torch.testing.assert_close(ours, expected, rtol=1e-7, atol=1e-10)


def test_gram_float32_precision_is_close_on_random_inputs():
    emb = random_embeddings(16, 64, 3, seed=4)
    exact = pmrl_bench.create_objective("gram", learnable=False)(emb).loss
    fast = pmrl_bench.create_objective("gram", learnable=False, precision="float32")(
        {m: e.detach().float() for m, e in emb.items()}
    ).loss
    assert fast.item() == pytest.approx(exact.item(), abs=1e-5)


def test_two_modality_volume_is_abs_sine():
    a, b = unit(5, 4, seed=1), unit(5, 4, seed=2)
    V, _ = volume_matrix(a, [b])
    cos = a @ b.T
    torch.testing.assert_close(V, (1 - cos**2).sqrt(), rtol=1e-10, atol=1e-12)


def test_random_512d_triples_have_volume_near_one():
    a, b, c = (unit(64, 512, seed=s) for s in range(3))
    V, _ = volume_matrix(a, [b, c])
    assert 0.98 < V.mean().item() <= 1.0  # docs/objectives.md#pmrl-sanity: about 0.997


def test_anchor_in_its_own_tuples_span_has_zero_volume_and_ranks_first():
    v, a = unit(10, 16, seed=3), unit(10, 16, seed=4)
    t = torch.nn.functional.normalize(v - 2 * a, dim=-1)  # in span(v_i, a_i), and in no other tuple's span
    objective = pmrl_bench.create_objective("gram")
    V = objective.volumes({"t": t, "v": v, "a": a})
    assert V.diagonal().max().item() <= 1e-6
    assert (V + torch.eye(10) * 1e9).min(dim=1).values.min().item() > 0.1
    ranks = pmrl_bench.evaluation.native.native_retrieval(objective, {"t": t, "v": v, "a": a})
    assert ranks["t->v+a"]["R@1"] == 1.0 and ranks["v+a->t"]["R@1"] == 1.0


def test_a_collinear_tuple_has_zero_volume_with_every_anchor():
    x = unit(6, 16, seed=3)
    V = pmrl_bench.create_objective("gram").volumes({"t": unit(6, 16, seed=5), "v": x, "a": -x})
    assert V.max().item() <= 1e-6  # sign-invariant: v = -a spans a line, whatever the anchor


def test_gram_equal_volumes_give_log_b():
    x = torch.eye(4, dtype=torch.float64)[:3]  # three orthonormal vectors
    emb = {"a": x[[0, 0, 0]], "b": x[[1, 1, 1]], "c": x[[2, 2, 2]]}  # every V_ij = 1
    out = pmrl_bench.create_objective("gram")(emb)
    assert out.loss.item() == pytest.approx(math.log(3), abs=1e-12)


@pytest.mark.parametrize("k, eps", [(2, 1e-5), (3, 3e-3)])
def test_near_collinear_fp32_inputs_keep_their_small_volume(k, eps):
    """docs/objectives.md, pitfall P8: an fp32 determinant loses small volumes; the float64 default keeps them."""
    x = unit(1, 64, seed=0)
    vectors = [x] + [torch.nn.functional.normalize(x + eps * unit(1, 64, seed=s), dim=-1) for s in range(1, k)]
    f32 = [v.float() for v in vectors]
    truth = torch.linalg.svdvals(torch.cat(f32).double().T).prod().item()  # exact volume of the fp32 inputs
    ours, negative = volume_matrix(f32[0], f32[1:])
    A = torch.cat(f32).T
    naive = torch.linalg.det(A.T @ A).abs().sqrt().item()  # the official route: fp32 det, abs, sqrt
    assert truth > 1e-6 and not negative.any()
    assert ours.item() == pytest.approx(truth, rel=1e-4)
    assert abs(naive - truth) > 10 * abs(ours.item() - truth)


@pytest.mark.parametrize("B,D,k", [(4, 6, 2), (6, 5, 3), (3, 8, 4)])
def test_volume_ablation_matches_product_of_singular_values(B, D, k):
    emb = random_embeddings(B, D, k, seed=k)
    out = pmrl_bench.create_objective("volume")(emb)
    ref = volume_reference(emb)
    assert set(out.terms) == {"volume"}
    assert out.loss.item() == pytest.approx(ref.item(), abs=1e-12)
    for ours, expected in zip(_grads(out.loss, emb), _grads(ref, emb)):
        torch.testing.assert_close(ours, expected, rtol=1e-7, atol=1e-10)


def test_volume_ablation_closed_forms_and_inter_option():
    eye = torch.eye(3, dtype=torch.float64)
    orthogonal = {m: eye[i].repeat(4, 1) for i, m in enumerate("abc")}
    assert pmrl_bench.create_objective("volume")(orthogonal).loss.item() == pytest.approx(1.0)
    x = unit(4, 3)
    coplanar = {"a": x, "b": x, "c": unit(4, 3, seed=1)}  # rank 2: volume 0, though not aligned
    assert pmrl_bench.create_objective("volume")(coplanar).loss.item() < 1e-5
    out = pmrl_bench.create_objective("volume", inter=True, tau2=0.1)(random_embeddings(8, 16, 3))
    pmrl = pmrl_bench.create_objective("pmrl", tau2=0.1)(random_embeddings(8, 16, 3))
    assert set(out.terms) == {"volume", "inter"}
    assert out.terms["inter"].item() == pytest.approx(pmrl.terms["inter"].item(), abs=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_cofactor_det_and_adjugate_match_linalg(n):
    M = torch.randn(7, n, n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    torch.testing.assert_close(det_small(M), torch.linalg.det(M))
    torch.testing.assert_close(adjugate_small(M), torch.linalg.det(M)[:, None, None] * torch.linalg.inv(M))
    singular = M.clone()
    singular[:, :, -1] = singular[:, :, 0]  # a repeated column: det 0, finite gradient all the same
    singular.requires_grad_()
    (grad,) = torch.autograd.grad(det_small(singular).sum(), [singular])
    assert torch.isfinite(grad).all()


def test_too_many_modalities_is_a_clear_error():
    objective = pmrl_bench.create_objective("gram")
    with pytest.raises(ValueError, match="up to 8 modalities"):
        objective.check_modalities([f"m{i}" for i in range(9)])


def test_negative_determinant_diagnostic_stays_on_the_device_as_a_tensor():
    x = unit(16, 32, seed=0, dtype=torch.float32)
    near = {m: torch.nn.functional.normalize(x + 1e-4 * unit(16, 32, seed=i, dtype=torch.float32), dim=-1)
            for i, m in enumerate("abc", start=1)}
    fp32 = pmrl_bench.create_objective("gram", precision="float32")
    fp64 = pmrl_bench.create_objective("gram")
    fp32(near)
    fp64(near)
    assert isinstance(fp32.negative_det_fraction, torch.Tensor) and fp32.negative_det_fraction.ndim == 0
    assert fp64.negative_det_fraction.item() <= fp32.negative_det_fraction.item()
    assert fp32.negative_det_fraction.item() > 0  # fp32 rounding makes near-collinear determinants negative (P8)
