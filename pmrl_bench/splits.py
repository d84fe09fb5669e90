"""Train, validation and test: carving a validation split out of train, the same way for every task.

The validation split serves model selection (``--select best``), hyper-parameter search (``pmrl-bench tune``) and
the training monitors' probe batch. The test split is read by the final evaluation only. A task that ships its own
validation split returns it as ``TaskData.validation``; otherwise one is carved from train here: seeded, and
stratified by the label when every class has at least two instances.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pmrl_bench.components import Split, TaskData

# The share of train held out for validation when a task does not say otherwise.
DEFAULT_VAL_SIZE = 0.15


def take(split: Split, rows: np.ndarray) -> Split:
    """The rows ``rows`` of every modality (and of the labels)."""
    labels = None if split.labels is None else np.asarray(split.labels)[rows]
    return Split({m: _rows(x, rows) for m, x in split.inputs.items()}, labels)


def _rows(values, rows: np.ndarray):
    if isinstance(values, list):
        return [values[i] for i in rows]
    return np.asarray(values)[rows]


def check_val_size(val_size: float) -> None:
    if not 0 < val_size < 1:
        raise ValueError(f"val_size must be a fraction in (0, 1), e.g. {DEFAULT_VAL_SIZE}, got {val_size}")


def validation_rows(n: int, labels: np.ndarray | None, val_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train rows, validation rows) of an n-row train split."""
    from sklearn.model_selection import train_test_split

    check_val_size(val_size)
    n_val = int(np.ceil(val_size * n))
    if n_val < 2 or n - n_val < 2:
        raise ValueError(f"a train split of {n} rows is too small to hold out {val_size:.0%} for validation "
                         "(each part needs at least 2 rows)")
    stratify = None
    if labels is not None:
        counts = np.bincount(np.asarray(labels))
        present = counts[counts > 0]
        if present.min() >= 2 and len(present) <= min(n_val, n - n_val):
            stratify = labels
    train, val = train_test_split(np.arange(n), test_size=n_val, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(val)


def carve_validation(split: Split, val_size: float = DEFAULT_VAL_SIZE, seed: int = 0) -> tuple[Split, Split]:
    """``(train, validation)``: ``val_size`` of ``split``'s rows held out, seeded and stratified when labels allow."""
    train_rows, val_rows = validation_rows(len(split), split.labels, val_size, seed)
    return take(split, train_rows), take(split, val_rows)


def with_validation(data: TaskData, val_size: float = DEFAULT_VAL_SIZE, seed: int = 0) -> TaskData:
    """``data`` itself when it has a validation split, else a copy whose train split lost a validation part."""
    if data.validation is not None:
        return data
    train, validation = carve_validation(data.train, val_size, seed)
    return replace(data, train=train, validation=validation)


def split_sizes(data: TaskData) -> dict[str, int]:
    """``{"train": n, "val": n, "test": n}`` (and ``"dropped": n`` when the task dropped rows): what result files
    record."""
    sizes = {"train": len(data.train), "val": len(data.validation) if data.validation is not None else 0,
             "test": len(data.test)}
    return {**sizes, "dropped": data.dropped} if data.dropped else sizes
