"""Checks on what a task hands the runner, so bad data fails early with one line naming the problem."""

from __future__ import annotations

import numpy as np

from pmrl_bench.components import Split, TaskData
from pmrl_bench.console import say
from pmrl_bench.errors import DataError

# Below this many validation rows, --select best's choice of step is mostly noise: the selection metric moves in
# steps of 1/n, and a different few rows would pick a different step.
SMALL_VALIDATION_SPLIT = 50


def check_task_data(task: str, data: TaskData) -> None:
    names = [m.name for m in data.modalities]
    if len(names) < 2:
        raise DataError(f"task {task!r} has {len(names)} modality; multimodal objectives need at least 2")
    if len(set(names)) != len(names):
        raise DataError(f"task {task!r} declares a modality twice: {names}")
    for split_name, split in (("train", data.train), ("validation", data.validation), ("test", data.test)):
        if split is not None:
            _check_split(task, split_name, split, data)


def _check_split(task: str, split_name: str, split: Split, data: TaskData) -> None:
    where = f"task {task!r}, {split_name} split"
    missing = [m.name for m in data.modalities if m.name not in split.inputs]
    if missing:
        raise DataError(f"{where}: no inputs for modality {missing[0]!r}")
    lengths = {m.name: len(split.inputs[m.name]) for m in data.modalities}
    if len(set(lengths.values())) != 1:
        shown = ", ".join(f"{k}={v}" for k, v in lengths.items())
        raise DataError(f"{where}: modalities must have one row per instance, got lengths {shown}")
    n = next(iter(lengths.values()))
    if n < 2:
        raise DataError(f"{where}: needs at least 2 instances, got {n}")
    for m in data.modalities:
        x = np.asarray(split.inputs[m.name])
        if tuple(x.shape[1:]) != tuple(m.shape):
            raise DataError(f"{where}: modality {m.name!r} has rows of shape {tuple(x.shape[1:])}, "
                            f"declared {tuple(m.shape)}")
        if np.issubdtype(x.dtype, np.floating):
            bad = ~np.isfinite(x.reshape(n, -1)).all(axis=1)
            if bad.any():
                raise DataError(f"{where}: modality {m.name!r} has a NaN or infinite value in row "
                                f"{int(np.argmax(bad))}")
    if split.labels is not None:
        labels = np.asarray(split.labels)
        if labels.shape != (n,):
            raise DataError(f"{where}: labels have shape {labels.shape}, expected ({n},)")
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{where}: labels must be integer class ids, got dtype {labels.dtype}")


def warn_unseen_test_labels(task: str, data: TaskData) -> None:
    """One warning line when test instances carry a label no training instance has: the classification probes
    cannot predict such a class, so its instances count as errors whatever the embedding."""
    if data.test.labels is None or data.train.labels is None:
        return
    test = np.asarray(data.test.labels)
    unseen = np.setdiff1d(np.unique(test), np.unique(np.asarray(data.train.labels)))
    if unseen.size:
        count = int(np.isin(test, unseen).sum())
        shown = ", ".join(map(str, unseen[:10].tolist())) + (", ..." if unseen.size > 10 else "")
        say(f"warning: task {task!r}: {count} of {len(test)} test instances carry a label never seen in training "
            f"(class ids {shown}); the classification probes cannot predict them, so accuracy is at most "
            f"{1 - count / len(test):.1%}")


def warn_small_validation(task: str, n_val: int, selection: str) -> None:
    """One warning line when ``--select best`` picks the kept step by a validation split of a handful of rows."""
    if selection == "best" and n_val < SMALL_VALIDATION_SPLIT:
        say(f"warning: task {task!r}: --select best picks the kept step by a validation split of {n_val} rows; at "
            f"fewer than {SMALL_VALIDATION_SPLIT} its choice is mostly noise (give the task more validation rows, "
            "e.g. a larger val_size, or use --select last)")
