"""Classification probes on frozen embeddings (scikit-learn): a linear probe and k-NN, per modality and fused."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

KNN_NEIGHBOURS = 10


def fuse(embeddings: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The fused embedding: the normalised mean of the modalities' unit embeddings."""
    return torch.nn.functional.normalize(torch.stack(list(embeddings.values())).mean(0), dim=-1)


def linear_probe_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, seed: int = 0
) -> float:
    """Test accuracy of a logistic-regression probe trained on the train embeddings."""
    probe = LogisticRegression(max_iter=1000, random_state=seed)
    probe.fit(train_x, train_y)
    return float(probe.score(test_x, test_y))


def knn_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, k: int = KNN_NEIGHBOURS
) -> float:
    """Test accuracy of a distance-weighted k-NN vote under cosine similarity (embeddings are unit vectors)."""
    knn = KNeighborsClassifier(n_neighbors=min(k, len(train_x)), metric="cosine", weights="distance")
    knn.fit(train_x, train_y)
    return float(knn.score(test_x, test_y))


PROBE_BACKENDS = ("torch", "sklearn")


def probe_accuracies(
    train: Mapping[str, torch.Tensor], train_y: np.ndarray, test: Mapping[str, torch.Tensor], test_y: np.ndarray,
    seed: int = 0, backend: str = "torch",
) -> dict[str, float]:
    """``{"linear:<modality>": acc, "knn:<modality>": acc, ..., "linear:fused": acc, "knn:fused": acc}``.

    ``backend``: ``"torch"`` fits the probes on the embeddings' device, ``"sklearn"`` with scikit-learn (the reference).
    """
    if backend not in PROBE_BACKENDS:
        raise ValueError(f"probe backend must be one of {', '.join(PROBE_BACKENDS)}, got {backend!r}")
    views = {**train, "fused": fuse(train)}
    test_views = {**test, "fused": fuse(test)}
    out: dict[str, float] = {}
    for name in views:
        train_x, test_x = views[name].cpu().numpy(), test_views[name].cpu().numpy()
        out[f"linear:{name}"] = linear_probe_accuracy(train_x, train_y, test_x, test_y, seed)
        out[f"knn:{name}"] = knn_accuracy(train_x, train_y, test_x, test_y)
    return out
