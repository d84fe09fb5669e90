"""The ``table`` task's columns: mapping columns to modalities, converting each to a vector, image or text modality
(with one-line errors naming the source row), class labels, and standardisation fitted on train."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from pmrl_bench.builtins.tasks.table_sources import FLOAT32_MAX, Origin, Source
from pmrl_bench.components import IMAGE, TEXT, VECTOR
from pmrl_bench.errors import DataError


def parse_columns(spec: str) -> dict[str, list[str]]:
    """``"a,b"`` -> ``{"a": ["a"], "b": ["b"]}``;
    ``"img=pixels,meta=x+y"`` -> ``{"img": ["pixels"], "meta": ["x", "y"]}``."""
    mapping: dict[str, list[str]] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        name, sep, rest = item.partition("=")
        parts = [c.strip() for c in (rest if sep else name).split("+")]
        name = name.strip()
        if not name or not all(parts):
            raise ValueError(f"columns entry {item!r} is not COLUMN or MODALITY=COLUMN[+COLUMN...]")
        if name in mapping:
            raise ValueError(f"columns names modality {name!r} twice")
        mapping[name] = parts
    if len(mapping) < 2:
        raise ValueError("columns must map at least two modalities, e.g. a,b,c or img=pixels,txt=caption; "
                         f"got {spec!r}")
    return mapping


def _is_missing(value: Any) -> bool:
    # pandas' NA (nullable and Arrow-backed columns) is neither None nor a float NaN
    return value is None or (isinstance(value, float) and math.isnan(value)) or type(value).__name__ == "NAType"


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


def _finite_float32(values: np.ndarray, rows: np.ndarray, where: str, origin: Origin) -> np.ndarray:
    """float64 values of shape (n, ...) as float32, naming the first row with a NaN or a value beyond float32."""
    flat = values.reshape(len(values), -1)
    bad = ~np.isfinite(flat).all(axis=1)
    if bad.any():
        raise DataError(f"{where}: {origin.row(int(rows[np.argmax(bad)]))} is NaN, infinite or empty")
    too_big = (np.abs(flat) > FLOAT32_MAX).any(axis=1)
    if too_big.any():
        i = int(np.argmax(too_big))
        raise DataError(f"{where}: {origin.row(int(rows[i]))} holds {np.abs(flat[i]).max():.4g}, beyond float32's "
                        f"range (±{FLOAT32_MAX:.3g}); rescale the column")
    return values.astype(np.float32)


def column_values(source: Source, column: str, text: bool = False) -> tuple[np.ndarray | list[str], str]:
    """One column as ``(array, kind)``: ``(n, k)`` float32 for vectors, ``(n, *shape)`` for images, a list of str
    for text (``text``: declared text). Raises a one-line DataError naming the column and the first bad row as the
    source numbers it."""
    frame, origin = source.frame, source.origin
    if column in source.views:  # a multi-view file's view: already an (n, d) array, checked as a whole
        values = source.views[column]
        where = f"task 'table', view {column!r} ({source.where.get(column, column)})"
        values = values if values.dtype.kind == "f" else values.astype(np.float32)
        return _finite_float32(values, np.arange(len(values)), where, origin), VECTOR if values.ndim == 2 else IMAGE
    where = f"task 'table', column {column!r}"
    if column not in frame.columns:
        raise DataError(f"{where} of {origin.name}: no such column; available: {', '.join(source.columns)}")
    series = frame[column]
    if series.dtype.kind in "biuf" and not text:  # a plain numeric column: one value per row
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return _finite_float32(values, np.arange(len(values)), where, origin)[:, None], VECTOR
    rows = series.tolist()
    for i, value in enumerate(rows):
        if _is_missing(value):
            raise DataError(f"{where}: {origin.row(i)} is empty (null or NaN)")
    if text:
        for i, value in enumerate(rows):
            if not isinstance(value, (str, numbers.Number)):
                raise DataError(f"{where}: {origin.row(i)} is a {type(value).__name__}, but text_columns declares "
                                "the column text; text cells hold strings")
        return [v if isinstance(v, str) else str(v) for v in rows], TEXT
    strings = [i for i, v in enumerate(rows) if isinstance(v, str) and _number(v) is None]
    if strings and len(strings) == len(rows):
        return rows, TEXT
    if strings:  # some cells text, some numbers: name the odd one out
        fix = f"declare the column text with --set task.table.text_columns={column}"
        if 2 * len(strings) <= len(rows):
            i = strings[0]
            raise DataError(f"{where}: {origin.row(i)} is {str(rows[i])[:20]!r}, not a number, but the column's "
                            f"other values are numbers; fix the cell (a decimal point, not a comma), or {fix}")
        text_rows = set(strings)
        i = next(i for i in range(len(rows)) if i not in text_rows)
        raise DataError(f"{where}: {origin.row(i)} is {str(rows[i])[:20]!r}, a number, but the column's other values "
                        f"are text; fix the cell, or {fix}")
    first_shape: tuple[int, ...] | None = None
    arrays = []
    for i, value in enumerate(rows):
        try:
            array = np.asarray(_number(value) if isinstance(value, str) else _nested_list(value), dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{where}: {origin.row(i)} is not a number, a list of numbers or a rectangular nested "
                            f"list (got {type(value).__name__} {str(value)[:40]!r})") from None
        if first_shape is None:
            first_shape = array.shape
        elif array.shape != first_shape:
            raise DataError(f"{where}: {origin.row(i)} has shape {array.shape}, but the first row has "
                            f"{first_shape}; every row of a modality must have the same shape")
        arrays.append(array)
    stacked = np.stack(arrays) if arrays else np.zeros((0, 1))
    if stacked.ndim == 1:
        stacked = stacked[:, None]
    if stacked.ndim > 4:
        raise DataError(f"{where}: rows have {stacked.ndim - 1} dimensions; use 1 (vector), 2 or 3 (image)")
    return _finite_float32(stacked, np.arange(len(stacked)), where, origin), VECTOR if stacked.ndim == 2 else IMAGE


def missing_rows(source: Source, column: str) -> np.ndarray:
    """Which rows of ``column`` hold a missing value: null, NaN, or a NaN inside a list or a view's row."""
    if column in source.views:
        values = source.views[column]
        if values.dtype.kind != "f":
            return np.zeros(len(values), dtype=bool)
        return np.isnan(values.reshape(len(values), -1)).any(axis=1)
    if column not in source.frame.columns:
        return np.zeros(len(source.frame), dtype=bool)  # column_values names the missing column
    series = source.frame[column]
    if series.dtype.kind in "biuf":
        return series.isna().to_numpy()
    return np.array([_is_missing(value) or _holds_nan(value) for value in series.tolist()], dtype=bool)


def _holds_nan(value: Any) -> bool:
    if isinstance(value, (str, numbers.Number)) or value is None:
        return False
    try:
        return bool(np.isnan(np.asarray(_nested_list(value), dtype=np.float64)).any())
    except (TypeError, ValueError):
        return False  # not numbers: column_values says what it is


def _nested_list(value: Any) -> Any:
    """Arrow list cells arrive as object arrays of arrays; make them plain nested lists numpy can stack."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [_nested_list(v) for v in value]
    if isinstance(value, (list, tuple)):
        return [_nested_list(v) for v in value]
    return value


def label_ids(sources: dict[str, Source], column: str) -> tuple[dict[str, np.ndarray], int]:
    """Class ids 0..K-1 (sorted class values) for every split, and K."""
    raw = {}
    for split, source in sources.items():
        where = f"task 'table', label column {column!r}"
        if column not in source.frame.columns:
            raise DataError(f"{where} of {source.origin.name}: no such column; "
                            f"available: {', '.join(source.columns) or 'none'}")
        values = source.frame[column].tolist()
        for i, value in enumerate(values):
            if _is_missing(value):
                raise DataError(f"{where}: {source.origin.row(i)} has no label (null or NaN)")
            if not isinstance(value, str) and not (isinstance(value, numbers.Real) and float(value).is_integer()):
                raise DataError(f"{where}: {source.origin.row(i)} is {value!r}; labels must be integers or strings "
                                "(class names)")
        raw[split] = [str(v) if isinstance(v, str) else int(v) for v in values]
    kinds = {type(v) for values in raw.values() for v in values}
    if len(kinds) > 1:
        raise DataError(f"task 'table', label column {column!r}: mixes numbers and strings; use one kind")
    classes = sorted({v for values in raw.values() for v in values})
    if len(classes) < 2:
        raise DataError(f"task 'table', label column {column!r}: needs at least 2 classes, found {len(classes)}")
    index = {c: i for i, c in enumerate(classes)}
    return {split: np.array([index[v] for v in values], dtype=np.int64) for split, values in raw.items()}, len(classes)


def standardise(parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every part scaled by the per-feature mean and std of ``parts["train"]`` (a constant feature is only
    centred). In float32, as the built-in tasks do, unless a float32 statistic would overflow (values near
    float32's limit): then in float64, and the scaled values are cast back."""
    try:
        with np.errstate(over="raise", invalid="raise"):
            return _scaled(parts, parts["train"].mean(0), parts["train"].std(0))
    except FloatingPointError:
        wide = {part: values.astype(np.float64) for part, values in parts.items()}
        scaled = _scaled(wide, wide["train"].mean(0), wide["train"].std(0))
        return {part: values.astype(np.float32) for part, values in scaled.items()}


def _scaled(parts: dict[str, np.ndarray], mean: np.ndarray, std: np.ndarray) -> dict[str, np.ndarray]:
    scale = np.where(std > 0, std, 1.0)
    return {part: (values - mean) / scale for part, values in parts.items()}
