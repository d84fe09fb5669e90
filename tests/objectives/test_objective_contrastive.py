"""infonce and anchor against written-out float64 CLIP losses; temperature and anchor conventions."""

from __future__ import annotations

import math

import pytest
import torch
from objective_reference import anchor_reference, infonce_reference, random_embeddings

import pmrl_bench
from pmrl_bench.errors import UsageError

SHAPES = [(2, 3, 2), (7, 5, 3), (12, 16, 4)]


def _grads(loss, emb):
    return torch.autograd.grad(loss, list(emb.values()))


@pytest.mark.parametrize("B,D,k", SHAPES)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_infonce_loss_and_gradient_match_reference(B, D, k, smoothing):
    emb = random_embeddings(B, D, k, seed=B * k)
    out = pmrl_bench.create_objective("infonce", temperature=0.05, learnable=False, label_smoothing=smoothing)(emb)
    ref = infonce_reference(emb, 0.05, smoothing)
    assert out.loss.item() == pytest.approx(ref.item(), abs=1e-10)
    assert len(out.terms) == k * (k - 1) // 2
    for ours, expected in zip(_grads(out.loss, emb), _grads(ref, emb)):
        torch.testing.assert_close(ours, expected, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("B,D,k", SHAPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_anchor_loss_and_gradient_match_reference(B, D, k, reduction):
    emb = random_embeddings(B, D, k, seed=B + k)
    anchor = list(emb)[-1]
    out = pmrl_bench.create_objective("anchor", anchor=anchor, temperature=0.1, learnable=False,
                                      reduction=reduction)(emb)
    ref = anchor_reference(emb, anchor, 0.1, reduction)
    assert set(out.terms) == {f"{anchor}|{m}" for m in emb if m != anchor}
    assert out.loss.item() == pytest.approx(ref.item(), abs=1e-10)
    for ours, expected in zip(_grads(out.loss, emb), _grads(ref, emb)):
        torch.testing.assert_close(ours, expected, rtol=1e-7, atol=1e-10)


def test_anchor_defaults_to_the_first_modality_and_never_pairs_the_others():
    emb = random_embeddings(6, 4, 3)
    out = pmrl_bench.create_objective("anchor")(emb)
    assert set(out.terms) == {"m0|m1", "m0|m2"}
    (g,) = torch.autograd.grad(out.terms["m0|m1"], [emb["m2"]], allow_unused=True)
    assert g is None  # m2 does not enter the m0|m1 term


def test_anchor_with_two_modalities_equals_infonce():
    emb = random_embeddings(9, 5, 2)
    a = pmrl_bench.create_objective("anchor", learnable=False)(emb).loss
    b = pmrl_bench.create_objective("infonce", learnable=False)(emb).loss
    assert a.item() == pytest.approx(b.item(), abs=1e-12)


def test_unknown_anchor_is_a_usage_error_naming_the_modalities():
    objective = pmrl_bench.create_objective("anchor", anchor="text")
    with pytest.raises(UsageError, match=r"unknown anchor modality 'text'.*m0, m1"):
        objective(random_embeddings(4, 3, 2))
    with pytest.raises(UsageError, match="'text'"):
        objective.check_modalities(["m0", "m1"])


@pytest.mark.parametrize("name", ["infonce", "anchor", "gram"])
def test_learnable_scale_follows_open_clip(name):
    objective = pmrl_bench.create_objective(name)
    assert objective.log_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert [p.shape for p in objective.parameters()] == [torch.Size([])]
    with torch.no_grad():
        objective.log_scale.fill_(10.0)
    objective.after_optimizer_step()
    assert objective.log_scale.item() == pytest.approx(math.log(100.0))
    with torch.no_grad():
        objective.log_scale.fill_(-3.0)
    objective.after_optimizer_step()
    assert objective.log_scale.item() == 0.0


@pytest.mark.parametrize("name", ["infonce", "anchor", "gram"])
def test_fixed_temperature_has_nothing_to_learn(name):
    objective = pmrl_bench.create_objective(name, temperature=0.2, learnable=False)
    assert list(objective.parameters()) == []
    objective.after_optimizer_step()  # no clamp on a fixed scale
    assert objective.logit_scale().item() == pytest.approx(5.0)


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("infonce", {"temperature": 0.0}, "temperature"),
        ("infonce", {"temperature": 2.0}, r"\[0.01, 1\]"),
        ("anchor", {"reduction": "max"}, "reduction"),
        ("gram", {"label_smoothing": 1.0}, "label_smoothing"),
        ("gram", {"precision": "float16"}, "precision"),
    ],
)
def test_bad_parameters_are_usage_errors(name, params, match):
    with pytest.raises(UsageError, match=match):
        pmrl_bench.create_objective(name, **params)
