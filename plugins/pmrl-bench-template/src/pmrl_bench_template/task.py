"""A task: built as ``factory(**params)``; ``load()`` returns a ``TaskData`` with a train and a test split whose
row i is the same instance in every modality. The split must depend only on the parameters (a ``seed``), so every
training seed is evaluated on the same test instances. ``card()`` states what the data is (``pmrl_bench.cards``)."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from pmrl_bench.cards import DataCard
from pmrl_bench.components import VECTOR, Modality, Split, TaskData

STRIPS = {2: ("top", "bottom"), 3: ("top", "middle", "bottom"), 4: ("top", "upper", "lower", "bottom")}


class DigitStrips:
    """scikit-learn's 8x8 digits cut into horizontal strips, one modality per strip (offline)."""

    def __init__(self, views: int = 2, test_fraction: float = 0.25, seed: int = 0) -> None:
        if views not in STRIPS:
            raise ValueError(f"views must be one of {sorted(STRIPS)}, got {views}")
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        self.views, self.test_fraction, self.seed = views, test_fraction, seed

    def card(self) -> DataCard:
        """The data card (every task states one; the contract checks it): what the data is, its source, licence and
        citation, and its shape, here read off the loaded data."""
        return DataCard(
            name="Optical Recognition of Handwritten Digits (scikit-learn's 8x8 digits)",
            description=f"1797 handwritten digits as 8x8 grey images, cut into {self.views} horizontal strips, one "
                        "modality per strip; label: the digit",
            source="sklearn.datasets.load_digits (the UCI test set copy shipped inside scikit-learn; no download)",
            licence="CC BY 4.0",
            citation="Alpaydin, E. & Kaynak, C. (1998). Optical Recognition of Handwritten Digits. UCI Machine "
                     "Learning Repository. https://doi.org/10.24432/C50P49",
            homepage="https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits",
        ).with_data(self.load())

    def load(self) -> TaskData:
        digits = load_digits()  # 1797 images, shipped inside scikit-learn: no download
        images = (digits.images / 16.0).astype(np.float32)  # (N, 8, 8) in [0, 1]
        labels = digits.target.astype(np.int64)
        names = STRIPS[self.views]
        rows = np.array_split(np.arange(8), self.views)
        inputs = {name: images[:, r, :].reshape(len(images), -1) for name, r in zip(names, rows)}
        train, test = train_test_split(
            np.arange(len(labels)), test_size=self.test_fraction, stratify=labels, random_state=self.seed
        )
        return TaskData(
            [Modality(name, VECTOR, (len(r) * 8,)) for name, r in zip(names, rows)],
            Split({m: x[train] for m, x in inputs.items()}, labels[train]),
            Split({m: x[test] for m, x in inputs.items()}, labels[test]),
            num_classes=10,
        )
