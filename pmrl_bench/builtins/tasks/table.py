"""A user dataset as a task: any table that Hugging Face ``datasets`` can read, with columns mapped to modalities.

    pmrl-bench run --objectives pmrl,infonce --tasks table \\
        --set task.table.source=my.parquet --set task.table.columns=a,b,c --set task.table.label=y

``source`` is a local ``.parquet``, ``.csv``, ``.json`` or ``.jsonl`` file, or a hub name when online (that needs
``datasets``: ``pip install 'pmrl-bench[data]'``). Without ``datasets`` local files are read with pandas
(parquet then needs pyarrow). ``columns`` maps columns to modalities: ``a,b,c`` makes one modality per column;
``img=pixels,meta=age+height+weight`` names them and joins numeric columns into one vector. A column of
numbers or of equal-length number lists is a vector modality, nested lists (rows of 2-D or 3-D arrays) an image
modality, strings a text modality (token ids from the shipped word tokenizer). ``label`` names an optional
class column (integers or strings). A source with a ``test`` split keeps it; otherwise a seeded split (stratified
by the label when there is one) holds out ``test_size`` of the rows.

Bad data fails before training with one line naming the column and the row.
"""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

import numpy as np

from pmrl_bench.builtins.tasks import cache
from pmrl_bench.builtins.tasks.tokenizer import WordTokenizer, words
from pmrl_bench.components import IMAGE, TEXT, VECTOR, Modality, Split, TaskData
from pmrl_bench.errors import DataError
from pmrl_bench.splits import DEFAULT_VAL_SIZE, check_val_size, with_validation

READERS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json"}


def read_source(source: str) -> dict[str, Any]:
    """``{split name: pandas.DataFrame}`` from a local file or a ``datasets`` hub name."""
    path = Path(source).expanduser()
    suffix = path.suffix.lower()
    if path.is_file():
        if suffix not in READERS:
            raise DataError(f"task 'table': cannot read {source!r}; use a {', '.join(READERS)} file")
        if cache.datasets_installed():
            from datasets import disable_progress_bars, load_dataset

            disable_progress_bars()  # one bar per file read would bury the sweep's own progress
            try:
                table = load_dataset(READERS[suffix], data_files=str(path), split="train",
                                     cache_dir=str(cache.cache_root() / "datasets"))
            except Exception as exc:  # datasets raises many types; all mean "Arrow cannot hold this file as is"
                # pandas keeps what Arrow rejects (e.g. a JSON column mixing lists and strings), so the column
                # checks below can name the offending row; if pandas fails too, report what datasets said.
                try:
                    return {"train": _read_with_pandas(path, suffix)}
                except DataError:
                    raise DataError(f"task 'table': datasets cannot read {source!r}: {_first_line(exc)}") from None
            return {"train": table.to_pandas()}
        return {"train": _read_with_pandas(path, suffix)}
    if suffix in READERS or path.parent != Path(".") or source.startswith("."):
        raise DataError(f"task 'table': no file {source!r}")
    if not cache.datasets_installed():
        raise DataError(f"task 'table': {source!r} is not a local file, and hub datasets need the optional "
                        "'datasets' package: pip install 'pmrl-bench[data]'")
    from datasets import load_dataset

    try:
        splits = load_dataset(source)
    except Exception as exc:
        raise DataError(f"task 'table': datasets cannot load {source!r} (offline, or no such dataset?): "
                        f"{_first_line(exc)}") from None
    return {name: split.to_pandas() for name, split in splits.items()}


def _read_with_pandas(path: Path, suffix: str) -> Any:
    import pandas as pd

    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path)
        return pd.read_json(path, lines=suffix == ".jsonl")
    except ImportError as exc:
        raise DataError(f"task 'table': reading {path.name} needs {exc.name or 'pyarrow'}: pip install 'pmrl-bench[data]'") from None
    except ValueError as exc:
        raise DataError(f"task 'table': pandas cannot read {str(path)!r}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def parse_columns(spec: str) -> dict[str, list[str]]:
    """``"a,b"`` -> ``{"a": ["a"], "b": ["b"]}``; ``"img=pixels,meta=x+y"`` -> ``{"img": ["pixels"], "meta": ["x", "y"]}``."""
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
        raise ValueError(f"columns must map at least two modalities, e.g. a,b,c or img=pixels,txt=caption; got {spec!r}")
    return mapping


def _where(what: str, split: str | None) -> str:
    return f"task 'table', {what}" + (f" of source split {split!r}" if split else "")


def column_values(frame: Any, column: str, split: str | None = None) -> tuple[np.ndarray | list[str], str]:
    """One column as ``(array, kind)``: ``(n, k)`` float32 for vectors, ``(n, *shape)`` for images, a list of str
    for text. Raises a one-line DataError naming the column and the first bad row (as numbered in the source)."""
    where = _where(f"column {column!r}", split)
    if column not in frame.columns:
        raise DataError(f"{where}: no such column; available: {', '.join(map(str, frame.columns))}")
    series = frame[column]
    if series.dtype.kind in "biuf":  # a plain numeric column: one value per row
        values = series.to_numpy(dtype=np.float32)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise DataError(f"{where}: row {bad[0]} is NaN or infinite")
        return values[:, None], VECTOR
    rows = series.tolist()
    for i, value in enumerate(rows):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            raise DataError(f"{where}: row {i} is empty (null or NaN)")
    if all(isinstance(value, str) for value in rows):
        return rows, TEXT
    first_shape: tuple[int, ...] | None = None
    arrays = []
    for i, value in enumerate(rows):
        if isinstance(value, str):
            raise DataError(f"{where}: row {i} is text ({value[:20]!r}) but earlier rows are numbers")
        try:
            array = np.asarray(_nested_list(value), dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{where}: row {i} is not a number, a list of numbers or a rectangular nested list "
                            f"(got {type(value).__name__} {str(value)[:40]!r})") from None
        if first_shape is None:
            first_shape = array.shape
        elif array.shape != first_shape:
            raise DataError(f"{where}: row {i} has shape {array.shape}, but row 0 has {first_shape}; "
                            "every row of a modality must have the same shape")
        if not np.isfinite(array).all():
            raise DataError(f"{where}: row {i} holds a NaN or infinite value")
        arrays.append(array)
    stacked = np.stack(arrays).astype(np.float32) if arrays else np.zeros((0, 1), np.float32)
    if stacked.ndim == 1:
        stacked = stacked[:, None]
    if stacked.ndim > 4:
        raise DataError(f"{where}: rows have {stacked.ndim - 1} dimensions; use 1 (vector), 2 or 3 (image)")
    return stacked, VECTOR if stacked.ndim == 2 else IMAGE


def _nested_list(value: Any) -> Any:
    """Arrow list cells arrive as object arrays of arrays; make them plain nested lists numpy can stack."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [_nested_list(v) for v in value]
    if isinstance(value, (list, tuple)):
        return [_nested_list(v) for v in value]
    return value


def label_ids(frames: dict[str, Any], column: str) -> tuple[dict[str, np.ndarray], int]:
    """Class ids 0..K-1 (sorted class values) for every source split, and K."""
    raw = {}
    for split, frame in frames.items():
        where = _where(f"label column {column!r}", split if len(frames) > 1 else None)
        if column not in frame.columns:
            raise DataError(f"{where}: no such column; available: {', '.join(map(str, frame.columns))}")
        values = frame[column].tolist()
        for i, value in enumerate(values):
            if value is None or (isinstance(value, float) and np.isnan(value)):
                raise DataError(f"{where}: row {i} has no label (null or NaN)")
            if not isinstance(value, str) and not (isinstance(value, numbers.Real) and float(value).is_integer()):
                raise DataError(f"{where}: row {i} is {value!r}; labels must be integers or strings (class names)")
        raw[split] = [str(v) if isinstance(v, str) else int(v) for v in values]
    kinds = {type(v) for values in raw.values() for v in values}
    if len(kinds) > 1:
        raise DataError(f"task 'table', label column {column!r}: mixes numbers and strings; use one kind")
    classes = sorted({v for values in raw.values() for v in values})
    if len(classes) < 2:
        raise DataError(f"task 'table', label column {column!r}: needs at least 2 classes, found {len(classes)}")
    index = {c: i for i, c in enumerate(classes)}
    return {split: np.array([index[v] for v in values], dtype=np.int64) for split, values in raw.items()}, len(classes)


class TableTask:
    """A user dataset (local parquet/CSV/JSON, or a hub name with ``datasets``): columns mapped to modalities, an
    optional label column, the source's test split or a seeded held-out split.

    Args:
        source: a local .parquet, .csv, .json or .jsonl file, or a datasets hub name.
        columns: columns as modalities: "a,b,c", or "img=pixels,meta=age+height" to name them and join columns.
        label: the class column; empty: no labels (retrieval only).
        test_size: share of the rows held out for test when the source has no test split.
        text_length: the most tokens kept of a text column's rows.
        val_size: share of the training rows held out for validation.
        seed: fixes the train/validation/test split.
    """

    def __init__(
        self, source: str = "", columns: str = "", label: str = "", test_size: float = 0.2, text_length: int = 32,
        val_size: float = DEFAULT_VAL_SIZE, seed: int = 0,
    ) -> None:
        if not source:
            raise ValueError("set the data file with --set task.table.source=PATH (parquet, csv, json or jsonl)")
        if not columns:
            raise ValueError("set the modality columns with --set task.table.columns=a,b,c (or name=col1+col2,...)")
        if not 0 < test_size < 1:
            raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size}")
        if text_length < 1:
            raise ValueError(f"text_length must be >= 1, got {text_length}")
        check_val_size(val_size)
        self.val_size = val_size
        self.source, self.mapping, self.label = source, parse_columns(columns), label
        self.test_size, self.text_length, self.seed = test_size, text_length, seed

    def split_rows(self, n: int, labels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Seeded train and test row indices of a source without a test split (stratified when labels allow)."""
        from sklearn.model_selection import train_test_split

        if n < 4:
            raise DataError(f"task 'table': {self.source!r} has {n} rows; it needs at least 4 to split")
        n_test = int(np.ceil(self.test_size * n))
        stratify = None
        if labels is not None:
            counts = np.bincount(labels)
            if counts[counts > 0].min() >= 2 and np.count_nonzero(counts) <= min(n_test, n - n_test):
                stratify = labels
        train, test = train_test_split(np.arange(n), test_size=self.test_size, random_state=self.seed, stratify=stratify)
        return np.sort(train), np.sort(test)

    def load(self) -> TaskData:
        sources = read_source(self.source)
        named = len(sources) > 1
        # Check and convert every column on the source as it is, so errors name rows as the user numbers them.
        columns = {
            split: {c: column_values(frame, c, split if named else None) for cs in self.mapping.values() for c in cs}
            for split, frame in sources.items()
        }
        labels, num_classes = label_ids(sources, self.label) if self.label else ({}, None)
        if "test" in sources:
            train_name = "train" if "train" in sources else next(n for n in sources if n != "test")
            parts = {"train": (train_name, slice(None)), "test": ("test", slice(None))}
        else:
            name = "train" if "train" in sources else next(iter(sources))
            train_rows, test_rows = self.split_rows(len(sources[name]), labels.get(name))
            parts = {"train": (name, train_rows), "test": (name, test_rows)}

        def take(values: Any, rows: Any) -> Any:
            return [values[i] for i in np.arange(len(values))[rows]] if isinstance(values, list) else values[rows]

        modalities: list[Modality] = []
        inputs: dict[str, dict[str, Any]] = {"train": {}, "test": {}}
        for name, cols in self.mapping.items():
            kinds = {kind for split_columns in columns.values() for c in cols for kind in [split_columns[c][1]]}
            if len(cols) > 1 and kinds != {VECTOR}:
                raise DataError(f"task 'table', modality {name!r}: only numeric vector columns can be joined with '+', "
                                f"but {'+'.join(cols)} includes {', '.join(sorted(kinds - {VECTOR}))} columns")
            if len(kinds) > 1:
                raise DataError(f"task 'table', column {cols[0]!r} holds {' and '.join(sorted(kinds))} in different splits")
            kind = kinds.pop()
            values = {
                part: [take(columns[split][c][0], rows) for c in cols] for part, (split, rows) in parts.items()
            }
            if kind == TEXT:
                tokenizer = WordTokenizer.fit(values["train"][0])
                longest = max(len(words(t)) for texts in values.values() for t in texts[0])
                length = min(self.text_length, max(1, longest))
                for part, texts in values.items():
                    inputs[part][name] = tokenizer.encode(texts[0], length)
                modalities.append(Modality(name, TEXT, (length,), info=tokenizer.info()))
                continue
            for part, arrays in values.items():
                inputs[part][name] = np.concatenate(arrays, axis=1) if kind == VECTOR else arrays[0]
            shapes = {part: inputs[part][name].shape[1:] for part in inputs}
            if shapes["train"] != shapes["test"]:
                raise DataError(f"task 'table', modality {name!r}: train rows have shape {shapes['train']} "
                                f"but test rows {shapes['test']}")
            modalities.append(Modality(name, kind, tuple(shapes["train"])))
        split_labels = {part: labels[split][rows] if labels else None for part, (split, rows) in parts.items()}
        data = TaskData(
            modalities,
            Split(inputs["train"], split_labels["train"]),
            Split(inputs["test"], split_labels["test"]),
            num_classes=num_classes,
        )
        return with_validation(data, self.val_size, self.seed)
