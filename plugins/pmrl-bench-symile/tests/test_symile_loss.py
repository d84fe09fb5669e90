"""Symile's logits and loss against plain loops over the formula, its native score, and the XOR task."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import pmrl_bench
from pmrl_bench.errors import UsageError
from pmrl_bench.testing import run_one_step, unit_embeddings
from pmrl_bench_symile import plugin
from pmrl_bench_symile.loss import MAX_N_SQUARED_ELEMENTS, SymileLoss, logits_n, logits_n_squared
from pmrl_bench_symile.xor import XorTask


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These tensors are tiny: intra-op threads only add contention (10x slower on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def mip(*rows: torch.Tensor) -> float:
    return float(torch.stack(rows).prod(0).sum())


@pytest.mark.parametrize("k", [2, 3, 4])
def test_logits_n_match_the_formula(k):
    reps = [x.double() for x in unit_embeddings(k, batch=5, dim=6, seed=k).values()]
    anchor, others = reps[0], reps[1:]
    generator = torch.Generator().manual_seed(1)
    perms = [torch.randperm(5, generator=generator) for _ in others]
    logits = logits_n(anchor, others, perms)
    for i, j in itertools.product(range(5), range(5)):
        rows = [r[i] for r in others] if i == j else [r[p[j]] for r, p in zip(others, perms)]
        assert float(logits[i, j]) == pytest.approx(mip(anchor[i], *rows), abs=1e-12)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_logits_n_squared_enumerate_every_combination(k):
    n = 4
    reps = [x.double() for x in unit_embeddings(k, batch=n, dim=5, seed=k).values()]
    anchor, others = reps[0], reps[1:]
    logits, positives = logits_n_squared(anchor, others)
    assert logits.shape == (n, n ** (k - 1))
    combos = list(itertools.product(range(n), repeat=k - 1))  # the documented column order
    for i, (c, combo) in itertools.product(range(n), enumerate(combos)):
        assert float(logits[i, c]) == pytest.approx(mip(anchor[i], *[r[j] for r, j in zip(others, combo)]), abs=1e-12)
    for i in range(n):
        assert combos[int(positives[i])] == (i,) * (k - 1)


def test_n_squared_loss_is_the_mean_cross_entropy_over_anchors():
    embeddings = unit_embeddings(3, batch=4, dim=5, seed=0)
    objective = SymileLoss(negative_sampling="n_squared", log_scale_init=1.5)
    output = objective(embeddings)
    reps = list(embeddings.values())
    expected = []
    for a in range(3):
        others = [reps[m] for m in range(3) if m != a]
        rows = []
        for i in range(4):
            scores = [np.exp(1.5) * mip(reps[a][i], others[0][j], others[1][k])
                      for j in range(4) for k in range(4)]
            rows.append(-torch.log_softmax(torch.tensor(scores, dtype=torch.float64), 0)[i * 4 + i])
        expected.append(torch.stack(rows).mean())
    assert float(output.loss.detach()) == pytest.approx(float(torch.stack(expected).mean()), rel=1e-5)
    assert set(output.terms) == {"anchor:m0", "anchor:m1", "anchor:m2"}


def test_n_sampling_positives_sit_on_the_diagonal_and_the_scale_learns():
    embeddings = {m: x.requires_grad_() for m, x in unit_embeddings(3, batch=6, dim=8, seed=2).items()}
    objective = SymileLoss()
    torch.manual_seed(0)
    objective(embeddings).loss.backward()
    assert objective.log_scale.grad is not None and torch.isfinite(objective.log_scale.grad)
    a, b, c = embeddings.values()
    logits = logits_n(a, [b, c], [torch.randperm(6), torch.randperm(6)])
    assert torch.allclose(logits.diagonal(), (a * b * c).sum(-1))


def test_native_score_is_the_scaled_mip_with_the_query_product():
    embeddings = unit_embeddings(3, batch=5, dim=8, seed=3)
    objective = SymileLoss(log_scale_init=0.5)
    a, b, c = embeddings.values()
    scores = objective.native_score({"m0": a, "m1": b}, {"m2": c})
    assert torch.allclose(scores, np.exp(0.5) * (a * b) @ c.T, atol=1e-6)
    assert objective.native_directions(["a", "b", "c"]) == [
        (("b", "c"), ("a",)), (("a", "c"), ("b",)), (("a", "b"), ("c",))]
    # Between two single modalities the score ranks as cosine does.
    assert torch.equal(objective.native_score({"m0": a}, {"m1": b}).argsort(1), (a @ b.T).argsort(1))


def test_bad_parameters_and_oversized_n_squared_are_clear_errors(pmrl_register_plugin):
    pmrl_register_plugin(plugin)
    with pytest.raises(UsageError, match="negative_sampling must be 'n' or 'n_squared', got 'n2'"):
        pmrl_bench.create_objective("symile", negative_sampling="n2")
    objective = pmrl_bench.create_objective("symile", negative_sampling="n_squared")
    n = round((MAX_N_SQUARED_ELEMENTS / 8) ** 0.5) + 1
    with pytest.raises(ValueError, match="use negative_sampling='n'"):
        objective(unit_embeddings(3, batch=n, dim=8))


def test_xor_task_bits_are_pairwise_independent_and_jointly_determined():
    data = XorTask(bits=8, n_train=4000, n_test=10, noise=0.1).load()
    a, b, c = (data.train.inputs[m] > 0 for m in ("a", "b", "c"))
    assert np.array_equal(c, a ^ b)
    for x, y in ((a, b), (a, c), (b, c)):  # any two are independent: correlation near 0
        assert abs(np.corrcoef(x[:, 0], y[:, 0])[0, 1]) < 0.05


def test_symile_learns_xor_where_pairwise_infonce_cannot(pmrl_register_plugin, pmrl_plugin_manager, tmp_path):
    pmrl_register_plugin(plugin)
    task = {"bits": 8, "n_train": 1024, "n_test": 128}
    common = {"task": "symile-xor", "task_params": task, "steps": 60, "batch_size": 64, "dim": 32}
    registry = pmrl_plugin_manager.registry
    symile = run_one_step(registry, tmp_path / "s", objective="symile", **common)
    infonce = run_one_step(registry, tmp_path / "i", objective="infonce", **common)
    chance = 1 / 128
    native = symile.metrics.model_dump()["retrieval_native"]
    assert all(native[d]["R@1"] > 10 * chance and native[d]["MdR"] <= 5 for d in ("a+b->c", "a+c->b", "b+c->a"))
    # Pairwise, every direction stays near chance: a median rank near the middle of 128 candidates.
    assert min(scores["MdR"] for scores in infonce.metrics.retrieval.values()) > 128 / 4
