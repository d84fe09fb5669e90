"""Property tests: triangle, centrobind, confu and a composite keep a finite loss and finite gradients on
degenerate inputs: collinear modalities (±one vector), duplicated modalities, constant embeddings (every instance
the same: zero variance across the batch), the anchor coinciding with another modality, modalities that cancel,
zero vectors, and near-coinciding points."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pmrl_bench
from pmrl_bench.evaluation.native import native_directions

KINDS = ("random", "collinear", "duplicated", "constant", "all_identical", "anchor_coincides", "cancel", "zero",
         "near_coinciding")


@st.composite
def embeddings(draw):
    """``(kind, {m0: (B, D) leaf, ...})`` of one degenerate family."""
    kind = draw(st.sampled_from(KINDS))
    k = draw(st.integers(2, 4))
    B = draw(st.integers(2, 6))
    D = draw(st.integers(2, 8))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    Z = F.normalize(torch.randn(B, k, D, generator=generator, dtype=torch.float64), dim=-1)
    if kind == "collinear":
        signs = torch.randint(0, 2, (B, k, 1), generator=generator).double() * 2 - 1
        Z = Z[:, :1] * signs
    elif kind == "duplicated":
        Z[:, 1] = Z[:, 0]
    elif kind == "constant":
        Z[1:] = Z[0]
    elif kind == "all_identical":
        Z = Z[:1, :1].expand(B, k, D).clone()
    elif kind == "anchor_coincides":
        Z[:, -1] = Z[:, 0]
    elif kind == "cancel":
        Z[:, 1] = -Z[:, 0]
    elif kind == "zero":
        Z[:, -1] = 0.0
    elif kind == "near_coinciding":
        eps = draw(st.sampled_from([1e-9, 1e-6, 1e-3]))
        Z = F.normalize(Z[:, :1] + eps * Z, dim=-1)
    return kind, {f"m{i}": Z[:, i].to(dtype).clone().requires_grad_() for i in range(k)}


def configurations(k: int, D: int) -> list[tuple[str, dict]]:
    configs = [
        ("triangle", {}),
        ("triangle", {"sqrt": True}),
        ("triangle", {"precision": "float32"}),
        ("triangle", {"sqrt": True, "precision": "float32"}),
        ("centrobind", {}),
        ("centrobind", {"include_self": False}),
        ("centrobind", {"detach_centroid": True, "label_smoothing": 0.1}),
        ("infonce+0.5*triangle", {}),
    ]
    if k >= 3:
        configs += [("confu", {"dim": D, "modalities": k, "hidden": 8}), ("confu", {"dim": D, "modalities": k,
                                                                                      "fusion_weight": 1.0})]
    return configs


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(embeddings())
def test_loss_terms_and_gradients_are_finite(case):
    kind, emb = case
    k, D = len(emb), next(iter(emb.values())).shape[1]
    for name, params in configurations(k, D):
        objective = pmrl_bench.create_objective(name, **params)
        if any(e.dtype == torch.float64 for e in emb.values()):
            objective = objective.double()
        out = objective(emb)
        leaves = list(emb.values()) + [p for p in objective.parameters() if p.requires_grad]
        grads = [g for g in torch.autograd.grad(out.loss, leaves, allow_unused=True) if g is not None]
        assert torch.isfinite(out.loss), (name, params, kind)
        assert all(torch.isfinite(t) for t in out.terms.values()), (name, params, kind)
        assert all(torch.isfinite(g).all() for g in grads), (name, params, kind)


@settings(max_examples=40, deadline=None)
@given(embeddings())
def test_native_scores_are_finite(case):
    kind, emb = case
    emb = {m: e.detach().float() for m, e in emb.items()}
    k, D = len(emb), next(iter(emb.values())).shape[1]
    objectives = [pmrl_bench.create_objective("triangle"), pmrl_bench.create_objective("triangle", sqrt=True)]
    if k >= 3:
        objectives.append(pmrl_bench.create_objective("confu", dim=D, modalities=k))
    for objective in objectives:
        for queries, gallery in native_directions(objective, list(emb)):
            scores = objective.native_score({m: emb[m] for m in queries}, {m: emb[m] for m in gallery})
            assert torch.isfinite(scores).all(), (type(objective).__name__, kind)


@pytest.mark.parametrize("name", ["triangle", "centrobind"])
def test_one_modality_is_a_clear_error(name):
    with pytest.raises(ValueError, match="at least 2 modalities"):
        pmrl_bench.create_objective(name)({"m0": F.normalize(torch.randn(4, 3), dim=-1)})
