"""triangle against the paper's area (and the official squared surrogate) written out in float64."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from newer_reference import triangle_measures_reference, triangle_reference
from objective_reference import infonce_reference, random_embeddings, unit

import pmrl_bench
from pmrl_bench.builtins.objectives.triangle import area_matrix
from pmrl_bench.errors import UsageError
from pmrl_bench.evaluation.native import native_directions, native_retrieval

SHAPES = [(2, 3, 2), (6, 5, 3), (5, 8, 4), (4, 9, 5)]


def _grads(loss, emb):
    return torch.autograd.grad(loss, list(emb.values()))


@pytest.mark.parametrize("B,D,k", SHAPES)
@pytest.mark.parametrize("sqrt", [False, True])
def test_area_matrix_matches_the_written_out_area(B, D, k, sqrt):
    emb = {m: e.detach() for m, e in random_embeddings(B, D, k, seed=B * D).items()}
    anchor, *others = emb.values()
    A, negative = area_matrix(anchor, others, sqrt=sqrt)
    torch.testing.assert_close(A, triangle_measures_reference(emb, "m0", sqrt), rtol=1e-9, atol=1e-12)
    assert not negative.any()


@pytest.mark.parametrize("B,D,k", SHAPES)
@pytest.mark.parametrize("sqrt", [False, True])
@pytest.mark.parametrize("anchor_index", [0, -1])
def test_triangle_loss_and_gradient_match_reference(B, D, k, sqrt, anchor_index):
    emb = random_embeddings(B, D, k, seed=B + D + k)
    anchor = list(emb)[anchor_index]
    objective = pmrl_bench.create_objective("triangle", anchor=anchor, learnable=False, sqrt=sqrt)
    out = objective(emb)
    a2d, d2a = triangle_reference(emb, anchor, 1 / objective.logit_scale().item(), eps=0.1, sqrt=sqrt)
    assert out.terms["a2d"].item() == pytest.approx(a2d.item(), abs=1e-10)
    assert out.terms["d2a"].item() == pytest.approx(d2a.item(), abs=1e-10)
    assert out.loss.item() == pytest.approx(0.5 * (a2d + d2a).item(), abs=1e-10)
    for ours, expected in zip(_grads(out.loss, emb), _grads(0.5 * (a2d + d2a), emb)):
        torch.testing.assert_close(ours, expected, rtol=1e-7, atol=1e-10)


def test_default_is_the_official_squared_surrogate_with_smoothing_and_a_learnable_scale():
    objective = pmrl_bench.create_objective("triangle")
    assert objective.sqrt is False and objective.label_smoothing == 0.1 and objective.precision == "float64"
    assert [p.shape for p in objective.parameters()] == [torch.Size([])]


def test_area_of_a_known_triangle():
    """Unit vectors e0, e1, e2: u = e0 − e1, w = e0 − e2, |u|² = |w|² = 2, u·w = 1, area = ½·sqrt(3)."""
    eye = torch.eye(3, dtype=torch.float64)
    A, _ = area_matrix(eye[:1], [eye[1:2], eye[2:3]], sqrt=True)
    assert A.item() == pytest.approx(0.5 * math.sqrt(3), abs=1e-12)
    squared, _ = area_matrix(eye[:1], [eye[1:2], eye[2:3]], sqrt=False)
    assert squared.item() == pytest.approx(1.5, abs=1e-12)  # (4 − 1)/2: the official code's value


def test_two_modalities_give_the_segment_and_the_surrogate_is_infonce_at_half_the_temperature():
    emb = random_embeddings(7, 5, 2, seed=3)
    a, b = (e.detach() for e in emb.values())
    length, _ = area_matrix(a, [b], sqrt=True)
    torch.testing.assert_close(length, torch.cdist(a, b), rtol=1e-9, atol=1e-12)
    out = pmrl_bench.create_objective("triangle", temperature=0.1, learnable=False, label_smoothing=0.0)(emb)
    # -|a - b|²/τ = (2 a·b − 2)/τ: the softmax ignores the constant, so this is CLIP at τ/2
    scale = pmrl_bench.create_objective("triangle", temperature=0.1, learnable=False).logit_scale().item()
    assert out.loss.item() == pytest.approx(infonce_reference(emb, 0.5 / scale).item(), abs=1e-10)


def test_area_is_zero_only_for_coinciding_or_collinear_points_not_for_parallel_vectors():
    x, y = unit(4, 6, seed=1), unit(4, 6, seed=2)
    coincide, _ = area_matrix(x, [x, y], sqrt=True)  # t = v: a degenerate triangle
    assert coincide.diagonal().max().item() <= 1e-6
    opposite, _ = area_matrix(x, [-x, y], sqrt=True)  # t, -t and y: a real triangle, though -t ∥ t
    assert opposite.diagonal().min().item() > 0.1


def test_triangle_retrieves_the_instance_whose_points_coincide_with_the_anchor():
    t = unit(12, 16, seed=5)
    emb = {"t": t, "v": F.normalize(t + 0.05 * unit(12, 16, seed=6), dim=-1),
           "a": F.normalize(t + 0.05 * unit(12, 16, seed=7), dim=-1)}
    objective = pmrl_bench.create_objective("triangle", anchor="t")
    assert native_directions(objective, list(emb)) == [(("t",), ("v", "a")), (("v", "a"), ("t",))]
    metrics = native_retrieval(objective, emb)
    assert metrics["t->v+a"]["R@1"] == 1.0 and metrics["v+a->t"]["R@1"] == 1.0
    forward = objective.native_score({"t": t[:5]}, {"v": emb["v"], "a": emb["a"]})
    backward = objective.native_score({"v": emb["v"], "a": emb["a"]}, {"t": t[:5]})
    assert forward.shape == (5, 12) and torch.equal(forward, backward.T) and bool((forward <= 0).all())


def test_float32_precision_is_close_on_random_inputs():
    emb = random_embeddings(16, 64, 3, seed=4)
    exact = pmrl_bench.create_objective("triangle", learnable=False)(emb).loss
    fast = pmrl_bench.create_objective("triangle", learnable=False, precision="float32")(
        {m: e.detach().float() for m, e in emb.items()}
    ).loss
    assert fast.item() == pytest.approx(exact.item(), abs=1e-4)


def test_too_many_modalities_and_unknown_anchor_are_clear_errors():
    objective = pmrl_bench.create_objective("triangle")
    with pytest.raises(ValueError, match="up to 8 modalities"):
        objective.check_modalities([f"m{i}" for i in range(9)])
    with pytest.raises(UsageError, match="unknown anchor modality 'text'"):
        pmrl_bench.create_objective("triangle", anchor="text").check_modalities(["m0", "m1", "m2"])
    with pytest.raises(UsageError, match="precision"):
        pmrl_bench.create_objective("triangle", precision="float16")
