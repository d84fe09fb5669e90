"""Native retrieval scores, the plugin contract for every built-in objective, and the runner's use of both."""

from __future__ import annotations

import pytest
import torch
from objective_reference import unit

import pmrl_bench
from pmrl_bench import testing
from pmrl_bench.cli import main
from pmrl_bench.errors import UsageError
from pmrl_bench.evaluation.native import native_directions, native_ranks, native_retrieval
from pmrl_bench.plugins import get_registry
from pmrl_bench.components import ObjectiveOutput
from pmrl_bench.registry import Component
from pmrl_bench.runner.spec import Budget
from pmrl_bench.runner.sweep_plan import SweepConfig, plan_sweep

BUILT_INS = ["pmrl", "infonce", "anchor", "gram", "pmrl-intra", "volume"]


@pytest.mark.parametrize("name", BUILT_INS)
@pytest.mark.parametrize("modalities", [2, 4])
def test_built_in_objectives_pass_the_plugin_contract(name, modalities):
    testing.check_objective(get_registry().get("objective", name), modalities=modalities)


class PairScore(torch.nn.Module):
    """A toy objective with a pairwise native score and no native_directions."""

    def native_score(self, queries, gallery):
        (q,), (g,) = queries.values(), gallery.values()
        return -torch.cdist(q, g)


def test_default_directions_are_every_ordered_pair_and_ranks_follow_the_tie_rule():
    emb = {"a": unit(30, 4, seed=1), "b": unit(30, 4, seed=2), "c": unit(30, 4, seed=3)}
    emb["b"][3] = emb["b"][4]  # a tie in the gallery: it counts against the query (pessimistic rank)
    ranks = native_ranks(PairScore(), emb, chunk_size=7)
    assert list(ranks) == ["a->b", "a->c", "b->a", "b->c", "c->a", "c->b"]
    scores = -torch.cdist(emb["a"], emb["b"])
    expected = (scores >= scores.diagonal()[:, None]).sum(1)
    assert torch.equal(ranks["a->b"], expected)


def test_gram_directions_and_keys():
    gram = pmrl_bench.create_objective("gram", anchor="m1")
    assert native_directions(gram, ["m0", "m1", "m2"]) == [(("m1",), ("m0", "m2")), (("m0", "m2"), ("m1",))]
    metrics = native_retrieval(gram, {m: unit(20, 6, seed=i) for i, m in enumerate(["m0", "m1", "m2"])})
    assert set(metrics) == {"m1->m0+m2", "m0+m2->m1"}
    assert set(metrics["m1->m0+m2"]) == {"R@1", "R@5", "R@10", "MdR"}
    assert native_retrieval(pmrl_bench.create_objective("pmrl"), {"a": unit(4, 3), "b": unit(4, 3)}) is None


def test_gram_native_score_both_ways_is_one_matrix_transposed():
    gram = pmrl_bench.create_objective("gram")
    a, v, t = unit(5, 6, seed=1), unit(7, 6, seed=2), unit(7, 6, seed=3)
    forward = gram.native_score({"a": a}, {"v": v, "t": t})
    backward = gram.native_score({"v": v, "t": t}, {"a": a})
    assert forward.shape == (5, 7) and torch.equal(forward, backward.T)
    with pytest.raises(ValueError, match="anchor alone"):
        gram.native_score({"a": a, "b": a}, {"v": v, "t": t})


class Counted:
    """Wraps an objective: counts the score entries its native score computes."""

    def __init__(self, objective, symmetric):
        self.objective, self.native_score_symmetric, self.entries = objective, symmetric, 0
        self.native_directions = objective.native_directions

    def native_score(self, queries, gallery):
        scores = self.objective.native_score(queries, gallery)
        self.entries += scores.numel()
        return scores


@pytest.mark.parametrize("name", ["gram", "volume", "triangle"])
@pytest.mark.parametrize("n, chunk_size", [(300, 64), (41, 7), (1100, 256)])
def test_a_symmetric_native_score_ranks_a_direction_and_its_reverse_from_one_matrix(name, n, chunk_size):
    """Same ranks as two separate passes, for half the score entries, while the gallery fits in one block
    (1100 instances do not: both passes, as without the declaration)."""
    objective = pmrl_bench.create_objective(name)
    assert objective.native_score_symmetric is True
    emb = {m: unit(n, 6, seed=i, dtype=torch.float32) for i, m in enumerate(["a", "b", "c"])}
    emb["b"][5] = emb["b"][6]  # a tie in the gallery
    one, two = Counted(objective, True), Counted(objective, False)
    ranks_one, ranks_two = native_ranks(one, emb, chunk_size), native_ranks(two, emb, chunk_size)
    assert list(ranks_one) == list(ranks_two) and all(torch.equal(ranks_one[k], ranks_two[k]) for k in ranks_two)
    assert one.entries == (two.entries if n > 1024 else two.entries // 2)


class QueryBiasedScore(torch.nn.Module):
    """A score that depends on which side is the query, so it may not declare itself symmetric."""

    def __init__(self, symmetric: bool = True) -> None:
        super().__init__()
        self.native_score_symmetric = symmetric

    def forward(self, embeddings):  # never trained: only its native score is checked
        return ObjectiveOutput(loss=sum(z.sum() for z in embeddings.values()), terms={})

    def native_score(self, queries, gallery):
        (q,), (g,) = queries.values(), gallery.values()
        return q @ g.T + q.sum(1, keepdim=True)


def test_the_contract_check_refuses_a_wrong_symmetry_declaration():
    lying = Component("objective", "query-biased", QueryBiasedScore, plugin="tests")
    with pytest.raises(testing.ContractViolation, match="declares native_score_symmetric, but native_score for"):
        testing.check_objective_native_score(lying)
    honest = Component("objective", "query-biased", lambda: QueryBiasedScore(symmetric=False), plugin="tests")
    assert testing.check_objective_native_score(honest)
    for name in ("gram", "volume", "triangle"):  # the built-ins that declare it
        assert testing.check_objective_native_score(get_registry().get("objective", name))


def test_bad_native_directions_are_a_clear_error():
    class Bad(PairScore):
        def native_directions(self, names):
            return [(("a",), ("a", "zzz"))]

    with pytest.raises(ValueError, match="native_directions of Bad"):
        native_directions(Bad(), ["a", "b"])


def test_an_unknown_anchor_fails_while_planning():
    config = SweepConfig(
        objectives=["anchor"], tasks=["synthetic"], seeds=1, budget=Budget(steps=10, batch_size=32, dim=16),
        overrides={("objective", "anchor"): {"anchor": "text"}}, device="cpu", progress=False,
    )
    with pytest.raises(UsageError, match=r"objective 'anchor' cannot run on task 'synthetic'.*'text'.*m0, m1, m2"):
        plan_sweep(config, get_registry())


def test_an_unknown_anchor_exits_2_with_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--objectives", "gram", "--tasks", "synthetic", "--set", "objective.gram.anchor=text",
            "--device", "cpu", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown anchor modality 'text'" in err and "Traceback" not in err


@pytest.mark.parametrize("name", ["gram", "volume"])
def test_runner_stores_native_retrieval_beside_cosine(name, tmp_path):
    result = testing.run_one_step(
        get_registry(), tmp_path, objective=name, task="synthetic", task_params={"n_train": 64, "n_test": 32}, steps=3
    )
    metrics = result.metrics.model_dump()
    native = metrics["retrieval_native"]
    if name == "gram":
        assert set(native) == {"m0->m1+m2", "m1+m2->m0"}
    else:
        assert set(native) == {"m0->m1+m2", "m1+m2->m0", "m1->m0+m2", "m0+m2->m1", "m2->m0+m1", "m0+m1->m2"}
    assert set(metrics["retrieval"]) == {"m0->m1", "m0->m2", "m1->m0", "m1->m2", "m2->m0", "m2->m1"}
    assert set(metrics["per_query_ranks"]["retrieval_native"]) == set(native)
    assert all(0.0 <= scores["R@1"] <= scores["R@10"] <= 1.0 for scores in native.values())
