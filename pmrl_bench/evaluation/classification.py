"""Classification probes on frozen embeddings (scikit-learn)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression


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


def probe_accuracies(
    train: Mapping[str, torch.Tensor], train_y: np.ndarray, test: Mapping[str, torch.Tensor], test_y: np.ndarray, seed: int = 0
) -> dict[str, float]:
    """``{"linear:<modality>": acc, ..., "linear:fused": acc}``."""
    views = {**train, "fused": fuse(train)}
    test_views = {**test, "fused": fuse(test)}
    return {
        f"linear:{name}": linear_probe_accuracy(
            views[name].cpu().numpy(), train_y, test_views[name].cpu().numpy(), test_y, seed
        )
        for name in views
    }
