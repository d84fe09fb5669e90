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

READERS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json"}


def read_source(source: str) -> dict[str, Any]:
    """``{split name: pandas.DataFrame}`` from a local file or a ``datasets`` hub name."""
    path = Path(source).expanduser()
    suffix = path.suffix.lower()
    if path.is_file():
        if suffix not in READERS:
            raise DataError(f"task 'table': cannot read {source!r}; use a {', '.join(READERS)} file")
        if cache.datasets_installed():
            from datasets import load_dataset

            try:
                table = load_dataset(READERS[suffix], data_files=str(path), split="train",
                                     cache_dir=str(cache.cache_root() / "datasets"))
            except Exception as exc:  # datasets raises many types; all mean "this file cannot be read"
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


def column_values(frame: Any, column: str, split: str) -> tuple[np.ndarray | list[str], str]:
    """One column as ``(array, kind)``: ``(n, k)`` float32 for vectors, ``(n, *shape)`` for images, a list of str
    for text. Raises a one-line DataError naming the column and the first bad row."""
    where = f"task 'table', {split} split, column {column!r}"
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
    """Class ids 0..K-1 (sorted class values) for every split, and K."""
    raw = {}
    for split, frame in frames.items():
        where = f"task 'table', {split} split, label column {column!r}"
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
    optional label column, the source's test split or a seeded held-out split."""

    def __init__(
        self, source: str = "", columns: str = "", label: str = "", test_size: float = 0.2, text_length: int = 32, seed: int = 0
    ) -> None:
        if not source:
            raise ValueError("set the data file with --set task.table.source=PATH (parquet, csv, json or jsonl)")
        if not columns:
            raise ValueError("set the modality columns with --set task.table.columns=a,b,c (or name=col1+col2,...)")
        if not 0 < test_size < 1:
            raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size}")
        if text_length < 1:
            raise ValueError(f"text_length must be >= 1, got {text_length}")
        self.source, self.mapping, self.label = source, parse_columns(columns), label
        self.test_size, self.text_length, self.seed = test_size, text_length, seed

    def split_frames(self, frames: dict[str, Any]) -> dict[str, Any]:
        """``{"train": frame, "test": frame}``: the source's own test split, else a seeded held-out share."""
        if "test" in frames:
            train_name = "train" if "train" in frames else next(n for n in frames if n != "test")
            return {"train": frames[train_name].reset_index(drop=True), "test": frames["test"].reset_index(drop=True)}
        from sklearn.model_selection import train_test_split

        frame = frames["train"] if "train" in frames else next(iter(frames.values()))
        if len(frame) < 4:
            raise DataError(f"task 'table': {self.source!r} has {len(frame)} rows; it needs at least 4 to split")
        stratify = None
        if self.label and self.label in frame.columns:
            counts = frame[self.label].value_counts(dropna=False)
            n_test = int(np.ceil(self.test_size * len(frame)))
            if counts.min() >= 2 and len(counts) <= min(n_test, len(frame) - n_test):
                stratify = frame[self.label].astype(str)
        train, test = train_test_split(frame, test_size=self.test_size, random_state=self.seed, stratify=stratify)
        return {"train": train.reset_index(drop=True), "test": test.reset_index(drop=True)}

    def load(self) -> TaskData:
        frames = self.split_frames(read_source(self.source))
        modalities: list[Modality] = []
        inputs: dict[str, dict[str, Any]] = {"train": {}, "test": {}}
        for name, columns in self.mapping.items():
            parts = {split: [column_values(frame, c, split) for c in columns] for split, frame in frames.items()}
            kinds = {kind for values in parts.values() for _, kind in values}
            if len(columns) > 1 and kinds != {VECTOR}:
                raise DataError(f"task 'table', modality {name!r}: only numeric vector columns can be joined with '+', "
                                f"but {'+'.join(columns)} includes {', '.join(sorted(kinds - {VECTOR}))} columns")
            kind = kinds.pop() if len(kinds) == 1 else VECTOR
            if kind == TEXT:
                tokenizer = WordTokenizer.fit(parts["train"][0][0])
                texts = {split: values[0][0] for split, values in parts.items()}
                length = min(self.text_length, max(1, max(len(words(t)) for v in texts.values() for t in v)))
                for split, text in texts.items():
                    inputs[split][name] = tokenizer.encode(text, length)
                modalities.append(Modality(name, TEXT, (length,), info=tokenizer.info()))
                continue
            for split, values in parts.items():
                inputs[split][name] = np.concatenate([v for v, _ in values], axis=1) if kind == VECTOR else values[0][0]
            shapes = {split: inputs[split][name].shape[1:] for split in inputs}
            if shapes["train"] != shapes["test"]:
                raise DataError(f"task 'table', modality {name!r}: train rows have shape {shapes['train']} "
                                f"but test rows {shapes['test']}")
            modalities.append(Modality(name, kind, tuple(shapes["train"])))
        labels: dict[str, np.ndarray | None] = {"train": None, "test": None}
        num_classes = None
        if self.label:
            ids, num_classes = label_ids(frames, self.label)
            labels.update(ids)
        return TaskData(
            modalities,
            Split(inputs["train"], labels["train"]),
            Split(inputs["test"], labels["test"]),
            num_classes=num_classes,
        )
