"""A fingerprint of a task's data, recorded in every result: changed data never passes for a finished run."""

from __future__ import annotations

import hashlib

import numpy as np

from pmrl_bench.components import Split, TaskData

FINGERPRINT_LENGTH = 16  # hex digits of SHA-256


def _update_array(digest: "hashlib._Hash", name: str, values: object) -> None:
    if isinstance(values, list):  # e.g. raw strings a plugin keeps as a list
        digest.update(f"{name}:list:{len(values)}".encode())
        for item in values:
            digest.update(repr(item).encode())
        return
    array = np.ascontiguousarray(np.asarray(values))
    digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
    if array.dtype.hasobject:
        for item in array.reshape(-1):
            digest.update(repr(item).encode())
    else:
        digest.update(array.tobytes())


def _update_split(digest: "hashlib._Hash", split_name: str, split: Split | None) -> None:
    if split is None:
        digest.update(f"{split_name}:none".encode())
        return
    for modality in sorted(split.inputs):
        _update_array(digest, f"{split_name}/{modality}", split.inputs[modality])
    if split.labels is not None:
        _update_array(digest, f"{split_name}/labels", split.labels)


def data_fingerprint(data: TaskData) -> str:
    """SHA-256 (first 16 hex digits) of the modalities' declarations and every value of every split, labels
    included: the same data gives the same fingerprint on every machine; any changed value changes it."""
    digest = hashlib.sha256()
    for modality in data.modalities:
        digest.update(f"modality:{modality.name}:{modality.kind}:{tuple(modality.shape)}".encode())
    digest.update(f"classes:{data.num_classes}".encode())
    for split_name in ("train", "validation", "test"):
        _update_split(digest, split_name, getattr(data, split_name))
    return digest.hexdigest()[:FINGERPRINT_LENGTH]
