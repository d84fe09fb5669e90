"""A seeded synthetic multimodal task that generates in milliseconds.

Every instance has a latent block shared by all modalities and a block unique to each modality.
Modality m observes ``[shared, unique_m] @ T_m + noise``, with T_m a fixed random map.
The class label is the argmax of a random linear read-out of the shared block, so it is recoverable
from any single modality; instance retrieval is well defined because positives share the row.
"""

from __future__ import annotations

import numpy as np

from pmrl_bench.components import VECTOR, Modality, Split, TaskData


class SyntheticTask:
    """Shared + unique Gaussian latent blocks seen through per-modality random linear maps."""

    def __init__(
        self,
        modalities: int = 3,
        n_train: int = 2048,
        n_test: int = 512,
        shared_dim: int = 8,
        unique_dim: int = 4,
        input_dim: int = 32,
        noise: float = 0.5,
        num_classes: int = 10,
        seed: int = 0,
    ) -> None:
        if modalities < 2:
            raise ValueError(f"modalities must be >= 2, got {modalities}")
        if min(n_train, n_test, shared_dim, input_dim, num_classes) < 1 or unique_dim < 0:
            raise ValueError("n_train, n_test, shared_dim, input_dim and num_classes must be >= 1, unique_dim >= 0")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.modalities = modalities
        self.n_train, self.n_test = n_train, n_test
        self.shared_dim, self.unique_dim, self.input_dim = shared_dim, unique_dim, input_dim
        self.noise, self.num_classes, self.seed = noise, num_classes, seed

    def load(self) -> TaskData:
        rng = np.random.default_rng(self.seed)
        n = self.n_train + self.n_test
        names = [f"m{i}" for i in range(self.modalities)]
        shared = rng.standard_normal((n, self.shared_dim))
        readout = rng.standard_normal((self.shared_dim, self.num_classes))
        labels = np.argmax(shared @ readout, axis=1).astype(np.int64)
        inputs = {}
        for name in names:
            unique = rng.standard_normal((n, self.unique_dim))
            latent = np.concatenate([shared, unique], axis=1)
            mixing = rng.standard_normal((latent.shape[1], self.input_dim)) / np.sqrt(latent.shape[1])
            observed = latent @ mixing + self.noise * rng.standard_normal((n, self.input_dim))
            inputs[name] = observed.astype(np.float32)
        train = Split({m: x[: self.n_train] for m, x in inputs.items()}, labels[: self.n_train])
        test = Split({m: x[self.n_train :] for m, x in inputs.items()}, labels[self.n_train :])
        modalities = [Modality(name, VECTOR, (self.input_dim,)) for name in names]
        return TaskData(modalities, train, test, num_classes=self.num_classes)
