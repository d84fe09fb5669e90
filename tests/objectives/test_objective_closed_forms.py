"""PMRL and pairwise InfoNCE against closed forms (float64 references and property tests: the other test files)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import pmrl_bench


def _unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64),
                       dim=-1).float()


def test_pmrl_intra_is_log_k_for_orthogonal_modalities():
    eye = torch.eye(3)
    emb = {m: eye[i].repeat(4, 1) for i, m in enumerate("abc")}  # every instance: 3 orthogonal unit vectors
    out = pmrl_bench.create_objective("pmrl")(emb)
    assert out.terms["intra"].item() == pytest.approx(math.log(3), abs=1e-6)


def test_pmrl_intra_is_tiny_when_fully_aligned():
    x = _unit(8, 16)
    out = pmrl_bench.create_objective("pmrl", tau1=0.05)({"a": x, "b": x, "c": x})
    # sigma = (sqrt 3, 0, 0): loss = log(1 + 2 exp(-sqrt(3)/tau1))
    assert out.terms["intra"].item() == pytest.approx(math.log1p(2 * math.exp(-math.sqrt(3) / 0.05)), abs=1e-6)


def test_pmrl_inter_at_random_init_matches_formula():
    B, tau2 = 64, 0.1
    emb = {m: _unit(B, 512, seed=i) for i, m in enumerate("abc")}
    out = pmrl_bench.create_objective("pmrl", tau2=tau2)(emb)
    expected = math.log1p((B - 1) * math.exp(-1 / tau2))  # u_i nearly orthogonal in 512-D
    assert out.terms["inter"].item() == pytest.approx(expected, rel=0.15)
    assert out.loss.item() == pytest.approx(float(out.terms["intra"] + out.terms["inter"]))


def test_pmrl_rejects_non_positive_temperatures():
    with pytest.raises(pmrl_bench.errors.UsageError, match="tau1"):
        pmrl_bench.create_objective("pmrl", tau1=0.0)


def test_infonce_matches_hand_written_clip_loss():
    a, b, c = _unit(6, 4, seed=1), _unit(6, 4, seed=2), _unit(6, 4, seed=3)
    objective = pmrl_bench.create_objective("infonce", temperature=0.1, learnable=False)
    out = objective({"a": a, "b": b, "c": c})
    labels = torch.arange(6)

    def clip(x, y):
        logits = x @ y.T / 0.1
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))

    assert set(out.terms) == {"a|b", "a|c", "b|c"}
    assert float(out.terms["a|c"]) == pytest.approx(float(clip(a, c)), rel=1e-5)
    assert out.loss.item() == pytest.approx(float((clip(a, b) + clip(a, c) + clip(b, c)) / 3), rel=1e-5)
    assert list(objective.parameters()) == []  # fixed temperature: nothing to learn


def test_infonce_learnable_scale_is_clamped_after_a_step():
    objective = pmrl_bench.create_objective("infonce")
    with torch.no_grad():
        objective.log_scale.fill_(10.0)
    objective.after_optimizer_step()
    assert float(objective.log_scale.detach()) == pytest.approx(math.log(100.0))
