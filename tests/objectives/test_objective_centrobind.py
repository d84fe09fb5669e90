"""centrobind against the written-out centroid InfoNCE in float64; its options and their closed forms."""

from __future__ import annotations

import pytest
import torch
from newer_reference import centrobind_reference
from objective_reference import infonce_reference, random_embeddings

import pmrl_bench
from pmrl_bench.builtins.objectives.centrobind import centroids
from pmrl_bench.errors import UsageError

SHAPES = [(2, 3, 2), (7, 5, 3), (12, 16, 4)]


def _grads(loss, emb):
    return torch.autograd.grad(loss, list(emb.values()))


@pytest.mark.parametrize("B,D,k", SHAPES)
@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("detach", [False, True])
def test_centrobind_loss_and_gradient_match_reference(B, D, k, include_self, detach):
    emb = random_embeddings(B, D, k, seed=B * k)
    objective = pmrl_bench.create_objective(
        "centrobind", temperature=0.1, learnable=False, label_smoothing=0.1, include_self=include_self,
        detach_centroid=detach,
    )
    out = objective(emb)
    ref = centrobind_reference(emb, 1 / objective.logit_scale().item(), 0.1, include_self, detach)
    assert set(out.terms) == {f"{m}|centroid" for m in emb}
    assert out.loss.item() == pytest.approx(ref.item(), abs=1e-10)
    for ours, expected in zip(_grads(out.loss, emb), _grads(ref, emb)):
        torch.testing.assert_close(ours, expected, rtol=1e-7, atol=1e-10)


def test_detaching_the_centroid_changes_the_gradient():
    emb = random_embeddings(6, 5, 3, seed=2)
    through = _grads(pmrl_bench.create_objective("centrobind", learnable=False)(emb).loss, emb)
    detached = _grads(pmrl_bench.create_objective("centrobind", learnable=False, detach_centroid=True)(emb).loss, emb)
    assert all(not torch.allclose(a, b) for a, b in zip(through, detached))


def test_leave_one_out_with_two_modalities_is_pairwise_infonce():
    emb = random_embeddings(9, 5, 2, seed=1)
    out = pmrl_bench.create_objective("centrobind", temperature=0.05, learnable=False, include_self=False)(emb)
    scale = pmrl_bench.create_objective("centrobind", temperature=0.05, learnable=False).logit_scale().item()
    assert out.loss.item() == pytest.approx(infonce_reference(emb, 1 / scale).item(), abs=1e-10)


def test_centroids_are_unit_vectors_and_shared_unless_leaving_one_out():
    emb = {m: e.detach() for m, e in random_embeddings(5, 4, 3, seed=3).items()}
    shared = centroids(emb)
    assert all(c is shared["m0"] for c in shared.values())
    torch.testing.assert_close(shared["m0"].norm(dim=-1), torch.ones(5, dtype=torch.float64))
    loo = centroids(emb, include_self=False)
    expected = emb["m1"] + emb["m2"]
    torch.testing.assert_close(loo["m0"], expected / expected.norm(dim=-1, keepdim=True))


def test_modalities_that_cancel_give_a_short_centroid_with_a_bounded_gradient():
    x = torch.nn.functional.normalize(torch.randn(4, 6, dtype=torch.float64), dim=-1)
    emb = {"a": x.clone().requires_grad_(), "b": (-x).requires_grad_()}  # mean exactly 0
    out = pmrl_bench.create_objective("centrobind", learnable=False)(emb)
    grads = _grads(out.loss, emb)
    assert torch.isfinite(out.loss) and all(torch.isfinite(g).all() and g.abs().max() < 1e9 for g in grads)


@pytest.mark.parametrize("params, match", [({"temperature": 0.0}, "temperature"), ({"label_smoothing": 1.0}, "label")])
def test_bad_parameters_are_usage_errors(params, match):
    with pytest.raises(UsageError, match=match):
        pmrl_bench.create_objective("centrobind", **params)
