"""confu against the official loss written out in float64 (fusion MLP included), its fusion, native score and the
runner's embedding dimension."""

from __future__ import annotations

import pytest
import torch
from newer_reference import confu_reference, fusion_reference
from objective_reference import infonce_reference, random_embeddings, unit

import pmrl_bench
from pmrl_bench.errors import UsageError
from pmrl_bench.evaluation.native import native_directions, native_retrieval
from pmrl_bench.plugins import get_registry
from pmrl_bench.runner.sweep_plan import resolved_params
from pmrl_bench.runner.spec import Budget
from pmrl_bench.runner.sweep_plan import SweepConfig, plan_sweep


def _confu64(D: int, **params):
    """A float64 confu without dropout, so that the reference's deterministic MLP applies."""
    torch.manual_seed(0)
    return pmrl_bench.create_objective("confu", dim=D, dropout=0.0, hidden=16, **params).double()


def _heads(objective):
    return {pair: [(lin.weight, lin.bias) for lin in head.linears]
            for pair, head in zip(objective.pairs, objective.fusions)}


@pytest.mark.parametrize("B,D,k", [(2, 3, 3), (7, 5, 3), (6, 8, 4)])
@pytest.mark.parametrize("fusion_weight", [0.5, 0.2, 0.0])
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_confu_loss_and_gradient_match_reference(B, D, k, fusion_weight, layers):
    emb = random_embeddings(B, D, k, seed=B + k)
    objective = _confu64(D, modalities=k, fusion_weight=fusion_weight, layers=layers)
    out = objective(emb)
    ref = confu_reference(emb, _heads(objective), fusion_weight, 1 / objective.logit_scale().item())
    assert out.loss.item() == pytest.approx(ref.item(), abs=1e-10)
    fused_terms = k * (k - 1) // 2 * (k - 2) if fusion_weight else 0
    assert len(out.terms) == k * (k - 1) // 2 + fused_terms
    leaves = list(emb.values()) + ([p for p in objective.parameters()] if fusion_weight else [])
    for ours, expected in zip(torch.autograd.grad(out.loss, leaves), torch.autograd.grad(ref, leaves)):
        torch.testing.assert_close(ours, expected, rtol=1e-7, atol=1e-10)


def test_defaults_follow_the_official_code():
    objective = pmrl_bench.create_objective("confu", dim=8)
    assert objective.fusion_weight == 0.5 and objective.logit_scale().item() == pytest.approx(1 / 0.07, rel=1e-6)
    assert [p for p in objective.parameters() if p.ndim == 0] == []  # a fixed temperature: nothing scalar to learn
    head = objective.fusions[0]
    assert [tuple(lin.weight.shape) for lin in head.linears] == [(512, 16), (8, 512)]
    assert head.dropout == 0.1 and len(objective.fusions) == 3


def test_lambda_zero_is_the_official_mean_of_the_pairwise_terms():
    emb = random_embeddings(8, 6, 3, seed=2)
    out = _confu64(6, fusion_weight=0.0)(emb)
    scale = _confu64(6).logit_scale().item()
    assert set(out.terms) == {"m0|m1", "m0|m2", "m1|m2"}
    assert out.loss.item() == pytest.approx(infonce_reference(emb, 1 / scale).item(), abs=1e-10)


def test_fusion_reads_the_pair_in_task_order_and_dropout_only_in_training():
    emb = {m: e.detach().float() for m, e in random_embeddings(5, 4, 3, seed=1).items()}
    torch.manual_seed(0)
    objective = pmrl_bench.create_objective("confu", dim=4, hidden=8, dropout=0.5)
    objective(emb)  # learns the task order
    fused = objective.fuse("m2", "m0", emb["m2"], emb["m0"])  # the (m0, m2) head, fed [m0 ‖ m2]
    head = objective.fusions[objective.pairs.index((0, 2))]
    expected = fusion_reference(emb["m0"], emb["m2"], [(lin.weight, lin.bias) for lin in head.linears])
    torch.testing.assert_close(fused, expected)
    objective.train()
    a, b = objective(emb).loss, objective(emb).loss
    assert a.item() != b.item()  # dropout in training
    first = objective.native_score({"m0": emb["m0"], "m1": emb["m1"]}, {"m2": emb["m2"]})
    assert torch.equal(first, objective.native_score({"m0": emb["m0"], "m1": emb["m1"]}, {"m2": emb["m2"]}))


def test_native_score_is_pair_to_third_and_a_trained_fusion_retrieves():
    objective = pmrl_bench.create_objective("confu", dim=6)
    names = ["a", "b", "c"]
    assert native_directions(objective, names) == [(("a", "b"), ("c",)), (("a", "c"), ("b",)), (("b", "c"), ("a",))]
    emb = {m: unit(40, 6, seed=i, dtype=torch.float32) for i, m in enumerate(names)}
    scores = objective.native_score({"a": emb["a"][:5], "b": emb["b"][:5]}, {"c": emb["c"]})
    assert scores.shape == (5, 40) and bool((scores.abs() <= 1 + 1e-5).all())
    with pytest.raises(ValueError, match="pair -> third"):
        objective.native_score({"c": emb["c"]}, {"a": emb["a"], "b": emb["b"]})
    # train only the fusion heads to map (a, b) onto c: pair -> third retrieval must then beat chance by far
    torch.manual_seed(0)
    objective = pmrl_bench.create_objective("confu", dim=6, hidden=64, fusion_weight=1.0, dropout=0.0, learnable=True)
    optimiser = torch.optim.Adam(objective.parameters(), lr=1e-2)
    for _ in range(150):
        optimiser.zero_grad()
        objective(emb).loss.backward()
        optimiser.step()
    assert native_retrieval(objective, emb)["a+b->c"]["R@1"] > 0.5


def test_modalities_must_match_and_dim_is_required():
    objective = pmrl_bench.create_objective("confu", dim=4)
    with pytest.raises(ValueError, match=r"built for 3 modalities and the task has 4.*modalities=4"):
        objective.check_modalities(["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="at least 3"):
        objective.check_modalities(["a", "b"])
    with pytest.raises(UsageError, match=r"dim must be >= 1 \(the embedding dimension"):
        pmrl_bench.create_objective("confu")
    for bad, match in [({"modalities": 2}, "modalities"), ({"fusion_weight": 1.5}, "fusion_weight"),
                       ({"dropout": 1.0}, "dropout"), ({"layers": 0}, "layers")]:
        with pytest.raises(UsageError, match=match):
            pmrl_bench.create_objective("confu", dim=4, **bad)


def test_the_runner_supplies_dim_and_rejects_a_different_one():
    registry = get_registry()
    assert resolved_params(registry, "objective", "confu", {}, dim=24)["dim"] == 24
    assert "dim" not in resolved_params(registry, "objective", "infonce", {}, dim=24)
    with pytest.raises(UsageError, match="dim=8 differs from the embedding dimension --dim 24"):
        resolved_params(registry, "objective", "confu", {("objective", "confu"): {"dim": "8"}}, dim=24)


def test_a_four_modality_task_is_not_applicable_until_modalities_is_set(capsys):
    config = SweepConfig(
        objectives=["confu"], tasks=["synthetic"], seeds=1, budget=Budget(steps=1, batch_size=16, dim=8),
        overrides={("task", "synthetic"): {"modalities": "4", "n_train": "64", "n_test": "32"}}, device="cpu",
        progress=False,
    )
    plan = plan_sweep(config, get_registry())  # built for 3: not applicable, said in one line, no error
    reason = plan.not_applicable[("synthetic", "confu")]
    assert "built for 3 modalities and the task has 4" in reason and "objective.confu.modalities=4" in reason
    assert capsys.readouterr().err.count("is not applicable to task 'synthetic'") == 1
    config.overrides[("objective", "confu")] = {"modalities": "4"}
    plan = plan_sweep(config, get_registry())
    assert not plan.not_applicable
    assert plan.specs[0].objective_params["dim"] == 8 and plan.specs[0].objective_params["modalities"] == 4
