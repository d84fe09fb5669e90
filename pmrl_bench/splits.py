"""Train, validation and test: carving a validation split out of train, the same way for every task.

The validation split serves model selection (``--select best``), hyper-parameter search (``pmrl-bench tune``) and
the training monitors' probe batch. The test split is read by the final evaluation only. A task that ships its own
validation split returns it as ``TaskData.validation``; otherwise one is carved from train here: seeded, and
stratified by the label when every class has at least two instances.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
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


def _row_bytes(values) -> list[bytes]:
    """Each row of one modality (or of the labels) as bytes that do not depend on how it was stored: floating-point
    values as float32 (what the encoders see), integers as int64, anything else by its ``repr``."""
    if isinstance(values, list):
        return [repr(item).encode() for item in values]
    array = np.asarray(values)
    if array.dtype.kind == "f":
        array = array.astype(np.float32)
    elif array.dtype.kind in "iub":
        array = array.astype(np.int64)
    else:
        return [repr(item).encode() for item in array.reshape(len(array), -1).tolist()]
    rows = np.ascontiguousarray(array.reshape(len(array), -1))
    return [row.tobytes() for row in rows]


def content_order(columns: Sequence[object], labels: np.ndarray | None = None) -> np.ndarray:
    """Row indices ranked by a SHA-256 of each row's content: the values of every column in ``columns`` (the
    modalities, in a fixed order) and the label. Equal rows keep their relative order (they are interchangeable)."""
    parts = [_row_bytes(c) for c in columns] + ([_row_bytes(labels)] if labels is not None else [])
    n = len(parts[0]) if parts else 0
    digests = []
    for i in range(n):
        digest = hashlib.sha256()
        for part in parts:
            digest.update(len(part[i]).to_bytes(8, "little"))
            digest.update(part[i])
        digests.append(digest.digest())
    return np.asarray(sorted(range(n), key=digests.__getitem__), dtype=np.int64)


def split_content_order(split: Split) -> np.ndarray:
    """:func:`content_order` of a split's rows, its modalities taken in name order."""
    return content_order([split.inputs[m] for m in sorted(split.inputs)], split.labels)


def in_content_order(split: Split) -> Split:
    return take(split, split_content_order(split))


def check_val_size(val_size: float) -> None:
    if not 0 < val_size < 1:
        raise ValueError(f"val_size must be a fraction in (0, 1), e.g. {DEFAULT_VAL_SIZE}, got {val_size}")


def validation_rows(n: int, labels: np.ndarray | None, val_size: float, seed: int,
                    order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows) of an n-row train split, each in ``order`` (the rows' content order, from
    :func:`content_order`; default: as stored). The seeded draw picks positions in ``order``, so given the content
    order the carve depends on the rows' content and the seed only."""
    check_val_size(val_size)
    return seeded_carve(n, labels, int(np.ceil(val_size * n)), seed, order, f"{val_size:.0%}", "validation")


def seeded_carve(n: int, labels: np.ndarray | None, n_out: int, seed: int, order: np.ndarray | None = None,
                 share: str = "", purpose: str = "validation") -> tuple[np.ndarray, np.ndarray]:
    """(kept rows, ``n_out`` held-out rows) of n rows: a seeded draw over positions in ``order``, stratified by the
    label when every class has two rows and fits both parts; both in ``order``."""
    from sklearn.model_selection import train_test_split

    if n_out < 2 or n - n_out < 2:
        raise ValueError(f"a train split of {n} rows is too small to hold out {share or n_out} for {purpose} "
                         "(each part needs at least 2 rows)")
    order = np.arange(n) if order is None else np.asarray(order)
    stratify = None
    if labels is not None:
        ordered = np.asarray(labels)[order]
        counts = np.bincount(ordered)
        present = counts[counts > 0]
        if present.min() >= 2 and len(present) <= min(n_out, n - n_out):
            stratify = ordered
    kept, held_out = train_test_split(np.arange(n), test_size=n_out, random_state=seed, stratify=stratify)
    return order[np.sort(kept)], order[np.sort(held_out)]


def carve_validation(split: Split, val_size: float = DEFAULT_VAL_SIZE, seed: int = 0) -> tuple[Split, Split]:
    """``(train, validation)``: ``val_size`` of ``split``'s rows held out, seeded and stratified when labels allow;
    both in content order."""
    train_rows, val_rows = validation_rows(len(split), split.labels, val_size, seed, split_content_order(split))
    return take(split, train_rows), take(split, val_rows)


def with_validation(data: TaskData, val_size: float = DEFAULT_VAL_SIZE, seed: int = 0) -> TaskData:
    """``data`` with a validation split (the task's own, or ``val_size`` of train carved out) and every split in
    content order, so nothing downstream (batches, fingerprint, metrics) depends on the order of the task's rows.
    Data this returned comes back unchanged."""
    if data.content_ordered and data.validation is not None:
        return data
    if data.validation is None:
        train, validation = carve_validation(data.train, val_size, seed)
    else:
        train, validation = in_content_order(data.train), in_content_order(data.validation)
    return replace(data, train=train, validation=validation, test=in_content_order(data.test), content_ordered=True)


def split_sizes(data: TaskData) -> dict[str, int]:
    """``{"train": n, "val": n, "test": n}`` (and ``"dropped": n`` when the task dropped rows): what result files
    record."""
    sizes = {"train": len(data.train), "val": len(data.validation) if data.validation is not None else 0,
             "test": len(data.test)}
    return {**sizes, "dropped": data.dropped} if data.dropped else sizes
