"""The evaluation views this issue adds: k-NN probes and one-modality-vs-fusion retrieval."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pmrl_bench.evaluation.classification import knn_accuracy
from pmrl_bench.evaluation.multimodal import multimodal_retrieval


def test_fused_query_finds_what_no_single_modality_does():
    g = torch.Generator().manual_seed(0)
    a, b = (F.normalize(torch.randn(200, 16, generator=g), dim=-1) for _ in range(2))
    c = F.normalize(a + b, dim=-1)  # c is determined by a and b together
    out = multimodal_retrieval({"a": a, "b": b, "c": c})
    assert set(out) == {"b+c->a", "a->b+c", "a+c->b", "b->a+c", "a+b->c", "c->a+b"}
    assert out["a+b->c"]["R@1"] == 1.0 and out["c->a+b"]["R@1"] == 1.0
    assert set(out["a+b->c"]) == {"R@1", "R@5", "R@10", "MdR"}
    assert multimodal_retrieval({"a": a, "b": b}) == {}  # two modalities: the pairwise directions cover it


def test_knn_probe_separable_vs_shuffled_labels():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    centres = rng.standard_normal((3, 8)) * 3
    x = centres[y] + rng.standard_normal((300, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert knn_accuracy(x[:200], y[:200], x[200:], y[200:]) > 0.9
    assert knn_accuracy(x[:200], rng.permutation(y[:200]), x[200:], y[200:]) < 0.6
    assert knn_accuracy(x[:5], y[:5], x[200:], y[200:]) >= 0  # fewer training rows than k still works
