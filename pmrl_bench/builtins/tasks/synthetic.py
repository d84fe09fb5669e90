"""A seeded, controlled synthetic multimodal task that generates in milliseconds.

Each instance has latent blocks of four kinds (after the FactorCL/PID generators and Symile's XOR data):

* **shared** (``shared_dim``): one Gaussian block seen by every modality;
* **pairwise** (``pairwise_dim``): one Gaussian block per pair of modalities, seen by those two only;
* **unique** (``unique_dim``): one Gaussian block per modality;
* **synergy** (``synergy_dim`` bits): modalities 0..M-2 get independent fair ±1 bits and modality M-1 gets
  their XOR (as ±1: the product). Any M-1 modalities' bits are independent of each other, so every pairwise
  mutual information is zero; only all M modalities together carry the dependence.

Modality m observes the concatenation of the blocks it sees through a fixed random linear map, plus Gaussian
noise: ``x_m = [blocks of m] @ T_m + noise * eps``. The class label is the argmax of a random linear read-out of
the shared block, so it is recoverable from any single modality; positives share the row, so instance
retrieval is well defined. With the default (zero) pairwise and synergy sizes the data is exactly that of the
first version of this task: the extra blocks come from a separate random stream. ``val_size`` of the train
instances are held out as the validation split.
"""

from __future__ import annotations

import itertools

import numpy as np

from pmrl_bench.components import VECTOR, Modality, Split, TaskData
from pmrl_bench.splits import DEFAULT_VAL_SIZE, check_val_size, with_validation


class SyntheticTask:
    """Shared, pairwise, unique and XOR-synergistic latent blocks seen through per-modality random linear maps.

    Args:
        modalities: number of modalities M, named m0 .. m{M-1}.
        n_train: training instances (the validation split is carved from them).
        n_test: test instances.
        shared_dim: size of the Gaussian block every modality sees (the label reads it).
        unique_dim: size of each modality's own Gaussian block.
        pairwise_dim: size of the Gaussian block each pair of modalities shares.
        synergy_dim: XOR bits: modality M-1's bits are the XOR of the others', zero pairwise information.
        input_dim: features per modality after the random linear map.
        noise: standard deviation of the Gaussian noise added to every feature.
        num_classes: classes of the label.
        val_size: share of the training instances held out for validation.
        seed: fixes the data and the split.
    """

    def __init__(
        self,
        modalities: int = 3,
        n_train: int = 2048,
        n_test: int = 512,
        shared_dim: int = 8,
        unique_dim: int = 4,
        pairwise_dim: int = 0,
        synergy_dim: int = 0,
        input_dim: int = 32,
        noise: float = 0.5,
        num_classes: int = 10,
        val_size: float = DEFAULT_VAL_SIZE,
        seed: int = 0,
    ) -> None:
        if modalities < 2:
            raise ValueError(f"modalities must be >= 2, got {modalities}")
        if min(n_train, n_test, input_dim, num_classes) < 1:
            raise ValueError("n_train, n_test, input_dim and num_classes must be >= 1")
        if min(shared_dim, unique_dim, pairwise_dim, synergy_dim) < 0:
            raise ValueError("shared_dim, unique_dim, pairwise_dim and synergy_dim must be >= 0")
        if shared_dim + pairwise_dim + synergy_dim == 0:
            raise ValueError("at least one of shared_dim, pairwise_dim and synergy_dim must be > 0, "
                             "or the modalities have nothing in common to align")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        check_val_size(val_size)
        self.modalities = modalities
        self.n_train, self.n_test = n_train, n_test
        self.shared_dim, self.unique_dim = shared_dim, unique_dim
        self.pairwise_dim, self.synergy_dim = pairwise_dim, synergy_dim
        self.input_dim, self.noise, self.num_classes, self.seed = input_dim, noise, num_classes, seed
        self.val_size = val_size

    def latent_blocks(self, n: int, extra: np.random.Generator) -> tuple[dict[tuple[int, int], np.ndarray], np.ndarray]:
        """The pairwise blocks ``{(i, j): (n, pairwise_dim)}`` and the synergy bits ``(M, n, synergy_dim)`` in ±1."""
        pairs = {
            pair: extra.standard_normal((n, self.pairwise_dim))
            for pair in itertools.combinations(range(self.modalities), 2)
        }
        free = extra.choice([-1.0, 1.0], size=(self.modalities - 1, n, self.synergy_dim))
        # The product of ±1 bits is their XOR; with it, any M-1 of the M bit vectors are independent fair coins.
        bits = np.concatenate([free, free.prod(axis=0, keepdims=True)], axis=0)
        return pairs, bits

    def load(self) -> TaskData:
        rng = np.random.default_rng(self.seed)
        extra = np.random.default_rng([self.seed, 1])  # a separate stream keeps the original blocks unchanged
        n = self.n_train + self.n_test
        names = [f"m{i}" for i in range(self.modalities)]
        shared = rng.standard_normal((n, self.shared_dim))
        readout = rng.standard_normal((self.shared_dim, self.num_classes))
        labels = np.argmax(shared @ readout, axis=1).astype(np.int64) if self.shared_dim else None
        pairs, bits = self.latent_blocks(n, extra)
        inputs = {}
        for m, name in enumerate(names):
            unique = rng.standard_normal((n, self.unique_dim))
            seen = [shared, unique] + [block for pair, block in pairs.items() if m in pair] + [bits[m]]
            latent = np.concatenate(seen, axis=1)
            mixing = rng.standard_normal((latent.shape[1], self.input_dim)) / np.sqrt(latent.shape[1])
            observed = latent @ mixing + self.noise * rng.standard_normal((n, self.input_dim))
            inputs[name] = observed.astype(np.float32)
        train_labels = None if labels is None else labels[: self.n_train]
        test_labels = None if labels is None else labels[self.n_train :]
        train = Split({m: x[: self.n_train] for m, x in inputs.items()}, train_labels)
        test = Split({m: x[self.n_train :] for m, x in inputs.items()}, test_labels)
        modalities = [Modality(name, VECTOR, (self.input_dim,)) for name in names]
        data = TaskData(modalities, train, test, num_classes=self.num_classes if labels is not None else None)
        return with_validation(data, self.val_size, self.seed)
