"""The torch classification probes (the default backend) against scikit-learn's (the reference).

Agreement is checked on embeddings of a short training run of every built-in task, view by view; the linear
probe's weights are checked against scikit-learn's optimum of the same objective; the k-NN's block sizes, exact
duplicates and tiny train splits against scikit-learn's answers; and degenerate inputs must not crash.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from pmrl_bench.evaluation.classification import (
    fit_logistic_regression, knn_accuracy, linear_probe_accuracy, probe_accuracies, standardise, torch_knn_accuracy,
    torch_linear_probe_accuracy,
)
from pmrl_bench.evaluation.embedding import embed, split_tensors
from pmrl_bench.plugins import get_registry
from pmrl_bench.runner.spec import Budget
from pmrl_bench.runner.sweep_plan import SweepConfig, plan_sweep
from pmrl_bench.runner.train import TrainOptions, train

CPU = torch.device("cpu")
# Each built-in task at its default size (the test splits hold 500+ rows, so one prediction is at most 0.2
# points), trained for a few steps so the embeddings are neither random nor collapsed.
TASKS = {"synthetic": {}, "mfeat": {}, "trifeatures": {"n_train": "1200"}}


@pytest.fixture(autouse=True)
def one_blas_thread():
    """scikit-learn's BLAS and OpenMP pools, like torch's, only contend on a small shared machine."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module", params=list(TASKS))
def embeddings(request):
    task = request.param
    config = SweepConfig(objectives=["infonce"], tasks=[task], seeds=1, progress=False, device="cpu",
                         budget=Budget(steps=20, batch_size=64, dim=32),
                         overrides={("task", task): TASKS[task]} if TASKS[task] else {})
    registry = get_registry()
    plan = plan_sweep(config, registry)
    spec, data = plan.specs[0], plan.data[task]
    with torch.random.fork_rng():
        trained = train(spec, data, registry, TrainOptions(device=CPU, progress=False), keep_initial=False)
    names = [m.name for m in data.modalities]
    train_emb = embed(trained.encoders, split_tensors(data.train, names, CPU))
    test_emb = embed(trained.encoders, split_tensors(data.test, names, CPU))
    return task, train_emb, data.train.labels, test_emb, data.test.labels


def test_torch_and_sklearn_probes_agree_within_one_point_per_view(embeddings):
    task, train_emb, train_y, test_emb, test_y = embeddings
    ours = probe_accuracies(train_emb, train_y, test_emb, test_y, backend="torch")
    reference = probe_accuracies(train_emb, train_y, test_emb, test_y, backend="sklearn")
    assert ours.keys() == reference.keys() and len(ours) == 2 * (len(train_emb) + 1)  # + the fused view
    gaps = {key: abs(ours[key] - reference[key]) for key in ours}
    assert max(gaps.values()) <= 0.01, (task, gaps)
    assert all(0.0 <= value <= 1.0 for value in ours.values())


def test_torch_probes_are_deterministic(embeddings):
    _, train_emb, train_y, test_emb, test_y = embeddings
    first = probe_accuracies(train_emb, train_y, test_emb, test_y)
    assert probe_accuracies(train_emb, train_y, test_emb, test_y) == first


def test_linear_probe_reaches_sklearns_optimum_of_the_same_objective():
    """Same data, C=1, standardised features, unpenalised intercept: the weights match scikit-learn's."""
    g = torch.Generator().manual_seed(1)
    y = torch.arange(300) % 4
    x = torch.randn(4, 6, generator=g)[y] + 2 * torch.randn(300, 6, generator=g)
    z, _ = standardise(x, x)
    weight, bias = fit_logistic_regression(z.double(), y, 4, tolerance=1e-9)
    reference = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(z.double().numpy(), y.numpy())
    assert np.allclose(weight.T.numpy(), reference.coef_, atol=1e-5)
    assert np.allclose(bias.numpy(), reference.intercept_, atol=1e-5)
    stronger, _ = fit_logistic_regression(z.double(), y, 4, c=0.01, tolerance=1e-9)
    assert stronger.norm() < 0.5 * weight.norm()  # C scales the penalty the right way


def _np(t: torch.Tensor) -> np.ndarray:
    return t.numpy()


def test_knn_blocks_duplicates_and_tiny_train_splits_match_sklearn():
    g = torch.Generator().manual_seed(2)
    y = torch.arange(400) % 5
    x = torch.randn(5, 8, generator=g)[y] + 1.5 * torch.randn(400, 8, generator=g)
    train_x, train_y, test_x, test_y = x[:300], y[:300], x[300:].clone(), y[300:]
    test_x[:10] = train_x[:10]  # exact duplicates: zero distance takes the whole vote, as in scikit-learn
    test_y = test_y.clone()
    test_y[:10] = train_y[:10]
    reference = knn_accuracy(_np(train_x), _np(train_y), _np(test_x), _np(test_y))
    for query_chunk, train_chunk in [(4096, 8192), (7, 3), (33, 64), (1, 256)]:
        ours = torch_knn_accuracy(train_x, train_y, test_x, test_y, query_chunk=query_chunk, train_chunk=train_chunk)
        assert float(ours) == pytest.approx(reference, abs=1e-12), (query_chunk, train_chunk)
    few = torch_knn_accuracy(train_x[:4], train_y[:4], test_x, test_y)  # k = 10 > 4 train rows
    assert float(few) == pytest.approx(knn_accuracy(_np(train_x[:4]), _np(train_y[:4]), _np(test_x), _np(test_y)))


def test_degenerate_inputs_do_not_crash_and_agree_with_sklearn():
    g = torch.Generator().manual_seed(3)
    y = torch.arange(200) % 3
    x = torch.randn(3, 6, generator=g)[y] + torch.randn(200, 6, generator=g)
    x[:, 2] = 0.7  # one constant feature
    views = {"constant-column": x, "all-constant": torch.ones(200, 6)}
    for name, view in views.items():
        ours = torch_linear_probe_accuracy(view[:150], y[:150], view[150:], y[150:])
        reference = linear_probe_accuracy(_np(view[:150]), _np(y[:150]), _np(view[150:]), _np(y[150:]))
        assert torch.isfinite(ours) and float(ours) == pytest.approx(reference, abs=0.02), name
    assert float(torch_linear_probe_accuracy(views["all-constant"][:150], y[:150], views["all-constant"][150:],
                                             y[150:])) == pytest.approx(float((y[150:] == 0).double().mean()))

    one_class = torch.zeros(150, dtype=torch.long)  # a train split with a single class
    for backend in ("torch", "sklearn"):
        accuracies = probe_accuracies({"a": x[:150], "b": x[:150]}, _np(one_class), {"a": x[150:], "b": x[150:]},
                                      _np(y[150:]), backend=backend)
        expected = float((y[150:] == 0).double().mean())  # it predicts the one class it has seen
        assert accuracies == pytest.approx({key: expected for key in accuracies}), backend


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="probe backend must be one of torch, sklearn"):
        probe_accuracies({"a": torch.ones(4, 2)}, np.zeros(4), {"a": torch.ones(4, 2)}, np.zeros(4), backend="jax")
