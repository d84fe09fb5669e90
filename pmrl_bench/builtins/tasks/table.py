"""A user dataset as a task: any table that Hugging Face ``datasets`` can read, with columns mapped to modalities.

    pmrl-bench run --objectives pmrl,infonce --tasks table \\
        --set task.table.source=my.parquet --set task.table.columns=a,b,c --set task.table.label=y

Parameters (``--set task.table.KEY=VALUE``):

``source``
    Where the data is. One local ``.parquet``, ``.csv``, ``.json`` or ``.jsonl`` file, which the task splits
    itself; or a directory holding a published split as files named ``train.*`` and ``test.*`` (and optionally
    ``validation.*``, also spelt ``valid``, ``val`` or ``dev``), in any of those formats; or a ``datasets`` hub name
    (see *Hub* below).
``test_source``, ``validation_source``
    A published split given file by file instead of as a directory: ``source`` is then the train file.
``columns``
    Columns to modalities: ``a,b,c`` makes one modality per column; ``img=pixels,meta=age+height+weight`` names
    them and joins numeric columns into one vector. A column of numbers or of equal-length number lists is a vector
    modality, nested lists (rows of 2-D or 3-D arrays) an image modality, text a text modality (token ids from
    the shipped word tokenizer).
``text_columns``
    Columns that are text even where a value looks like a number (``caption,notes``). Without it, a column is text
    only when none of its values is a number; a column of numbers with one cell such as ``abc`` or ``1,5`` is an
    error naming that cell, never a silent text modality.
``label``
    An optional class column (integers or strings); it enables the classification probes.
``standardize`` (true)
    Scale every feature of a vector modality to zero mean and unit variance, with statistics of the final train
    rows only (after validation is carved out); validation and test rows use the same statistics. Encoders get
    comparable scales whatever units a column is in (a view whose values are around 1e4 would otherwise leave
    every objective at chance on it). Image and text modalities are left as they are.
``test_size`` (0.2), ``val_size`` (0.15), ``seed`` (0)
    Without a shipped test split, a seeded split (stratified by the label when every class allows) holds out
    ``test_size`` of the rows for testing; without a shipped validation split, ``val_size`` of the train rows are
    held out for validation the same way. Shipped splits are used as they are.
``text_length`` (32)
    Tokens kept per text value.

Reading: with ``datasets`` installed (``pip install 'pmrl-bench[data]'``) files are read through
``load_dataset(format, data_files={"train": ..., "test": ...})``; without it, or when Arrow cannot hold a file
as it is, with pandas (parquet then needs pyarrow).

Hub: a source that is no local path is read as a ``datasets`` hub name, from the local Hugging Face cache only
(``HF_HUB_OFFLINE=1`` during the read), so an unknown name fails at once instead of retrying the network. Set
``PMRL_BENCH_HUB=1`` to let it download from the hub.

Bad data fails before training with one line naming the column and the row as the file numbers it: for CSV and
JSON-lines files the line (1-based; a CSV's header is line 1), for parquet, JSON and hub splits the row index
(0-based).
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pmrl_bench.builtins.tasks import cache
from pmrl_bench.builtins.tasks.tokenizer import WordTokenizer, words
from pmrl_bench.components import IMAGE, TEXT, VECTOR, Modality, Split, TaskData
from pmrl_bench.errors import DataError
from pmrl_bench.splits import DEFAULT_VAL_SIZE, check_val_size, validation_rows

READERS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json"}
# File stems (and hub split names) that name a split; the aliases are the ones `datasets` itself recognises.
SPLIT_NAMES = {"train": "train", "test": "test", "validation": "validation", "valid": "validation",
               "val": "validation", "dev": "validation"}
ENV_HUB = "PMRL_BENCH_HUB"
HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
FLOAT32_MAX = float(np.finfo(np.float32).max)
QUIET_LOGGERS = ("datasets", "huggingface_hub", "fsspec", "filelock", "urllib3", "httpx")


@dataclass(frozen=True)
class Origin:
    """Where a frame's rows come from, so a row is named as the user numbers it."""

    name: str
    unit: str = "row"  # "line" for text files, "row" otherwise
    first: int = 0  # the number of the first data row
    convention: str = "0-based"

    def row(self, index: int) -> str:
        return f"{self.unit} {index + self.first} of {self.name} ({self.convention})"


def file_origin(path: Path) -> Origin:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return Origin(str(path), "line", 2, "1-based, the header is line 1")
    if suffix == ".jsonl":
        return Origin(str(path), "line", 1, "1-based")
    return Origin(str(path))


@dataclass
class Source:
    """One split as read: a pandas DataFrame and where its rows come from."""

    frame: Any
    origin: Origin


# -- reading -----------------------------------------------------------------------------------------------------------


def hub_allowed() -> bool:
    return os.environ.get(ENV_HUB, "").strip().lower() in {"1", "true", "yes", "on"}


@contextmanager
def quiet_reading(online: bool = False) -> Iterator[None]:
    """Silence ``datasets``/``huggingface_hub`` logging, warnings and progress bars around a read, and keep the
    hub offline unless ``online``: an error is then our one line, not log lines and minutes of retries before it."""
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    patched: list[tuple[Any, str, Any]] = []
    env_before = os.environ.get("HF_HUB_OFFLINE")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.CRITICAL + 1)
        if not online:
            os.environ["HF_HUB_OFFLINE"] = "1"
            # Both libraries read the variable once, at import: set the values they already hold, too.
            for module_name, attribute in (("huggingface_hub.constants", "HF_HUB_OFFLINE"),
                                           ("datasets.config", "HF_HUB_OFFLINE")):
                module = _imported(module_name)
                if module is not None:
                    patched.append((module, attribute, getattr(module, attribute)))
                    setattr(module, attribute, True)
        try:
            yield
        finally:
            for module, attribute, value in patched:
                setattr(module, attribute, value)
            if not online:
                if env_before is None:
                    os.environ.pop("HF_HUB_OFFLINE", None)
                else:
                    os.environ["HF_HUB_OFFLINE"] = env_before
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def _imported(module_name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module_name)
    except ImportError:
        return None


def split_files(directory: Path) -> dict[str, Path]:
    """``{"train": path, "test": path[, "validation": path]}`` of a directory holding a published split."""
    found: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        split = SPLIT_NAMES.get(path.stem.lower())
        if split is None or path.suffix.lower() not in READERS or not path.is_file():
            continue
        if split in found:
            raise DataError(f"task 'table': directory {str(directory)!r} holds two {split} files, "
                            f"{found[split].name} and {path.name}; keep one")
        found[split] = path
    missing = [s for s in ("train", "test") if s not in found]
    if missing:
        raise DataError(f"task 'table': directory {str(directory)!r} holds no {' and no '.join(missing)} file; "
                        "a directory source needs train.EXT and test.EXT (optionally validation.EXT), "
                        f"EXT one of {', '.join(s.lstrip('.') for s in READERS)}")
    return found


def _local_file(text: str, what: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        raise DataError(f"task 'table': no file {text!r} (the {what}); give a {', '.join(READERS)} file")
    if path.suffix.lower() not in READERS:
        raise DataError(f"task 'table': cannot read {text!r} (the {what}); use a {', '.join(READERS)} file")
    return path


def read_source(source: str, test_source: str = "", validation_source: str = "") -> dict[str, Source]:
    """``{split name: Source}`` from a file, a directory of split files, split files, or a hub name."""
    path = Path(source).expanduser()
    if test_source or validation_source:
        if path.is_dir():
            raise DataError(f"task 'table': source {source!r} is a directory; with test_source or "
                            "validation_source, source must be the train file")
        files = {"train": _local_file(source, "source")}
        if test_source:
            files["test"] = _local_file(test_source, "test_source")
        if validation_source:
            files["validation"] = _local_file(validation_source, "validation_source")
        return read_files(files)
    if path.is_dir():
        return read_files(split_files(path))
    if path.is_file():
        return read_files({"train": _local_file(source, "source")})
    if path.suffix.lower() in READERS or source.startswith((".", "/", "~")) or not HUB_NAME.match(source):
        raise DataError(f"task 'table': no file or directory {source!r}")
    return read_hub(source)


def read_files(files: dict[str, Path]) -> dict[str, Source]:
    """Each split file as a DataFrame: through ``datasets`` (one ``load_dataset`` per format), else pandas."""
    origins = {split: file_origin(path) for split, path in files.items()}
    if not cache.datasets_installed():
        return {split: Source(_read_with_pandas(path), origins[split]) for split, path in files.items()}
    from datasets import disable_progress_bars, load_dataset

    disable_progress_bars()  # one bar per file read would bury the sweep's own progress
    by_format: dict[str, dict[str, str]] = {}
    for split, path in files.items():
        by_format.setdefault(READERS[path.suffix.lower()], {})[split] = str(path)
    frames: dict[str, Any] = {}
    for builder, data_files in by_format.items():
        try:
            with quiet_reading():
                loaded = load_dataset(builder, data_files=data_files, cache_dir=str(cache.cache_root() / "datasets"))
            frames.update({split: loaded[split].to_pandas() for split in data_files})
        except Exception as exc:  # noqa: BLE001 - datasets raises many types; all mean "Arrow cannot hold these files"
            # pandas keeps what Arrow rejects (a JSON column mixing lists and strings, splits whose column types
            # differ), so the column checks below can name the offending row; if pandas fails too, say what
            # datasets said.
            for split, name in data_files.items():
                try:
                    frames[split] = _read_with_pandas(Path(name))
                except DataError:
                    raise DataError(f"task 'table': datasets cannot read {name!r}: {_first_line(exc)}") from None
    return {split: Source(frames[split], origins[split]) for split in files}


def read_hub(source: str) -> dict[str, Source]:
    if not cache.datasets_installed():
        raise DataError(f"task 'table': {source!r} is not a local file or directory, and hub datasets need the "
                        "optional 'datasets' package: pip install 'pmrl-bench[data]'")
    from datasets import disable_progress_bars, load_dataset

    disable_progress_bars()
    online = hub_allowed()
    try:
        with quiet_reading(online=online):
            splits = load_dataset(source)
    except Exception as exc:  # noqa: BLE001 - offline misses, unknown names, network errors: one line each
        if not online:
            raise DataError(f"task 'table': {source!r} is not a local file or directory, nor a dataset in the local "
                            f"Hugging Face cache; to download it from the hub, set {ENV_HUB}=1 (needs internet)") from None
        raise DataError(f"task 'table': datasets cannot load {source!r} from the hub (offline, or no such "
                        f"dataset?): {_first_line(exc)}") from None
    return {name: Source(split.to_pandas(), Origin(f"split {name!r} of {source!r}")) for name, split in splits.items()}


def _read_with_pandas(path: Path) -> Any:
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. a mixed-type column: the column checks name its bad row
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


# -- columns -----------------------------------------------------------------------------------------------------------


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
    where = f"task 'table', column {column!r}"
    if column not in frame.columns:
        raise DataError(f"{where} of {origin.name}: no such column; available: {', '.join(map(str, frame.columns))}")
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
                            f"available: {', '.join(map(str, source.frame.columns))}")
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


# -- the task ----------------------------------------------------------------------------------------------------------


class TableTask:
    """A user dataset (local parquet/CSV/JSON files, or a hub name with ``datasets``): columns mapped to
    modalities, an optional label column, the source's own train/validation/test split or seeded ones.

    Args:
        source: a local .parquet, .csv, .json or .jsonl file, a directory holding train and test (and optionally
            validation) files, or a datasets hub name.
        columns: columns as modalities: "a,b,c", or "img=pixels,meta=age+height" to name them and join columns.
        label: the class column; empty: no labels (retrieval only).
        test_size: share of the rows held out for test when the source has no test split.
        text_length: the most tokens kept of a text column's rows.
        val_size: share of the training rows held out for validation when the source has no validation split.
        seed: fixes the train/validation/test split.
        test_source: a separate file holding the test split.
        validation_source: a separate file holding the validation split.
        standardize: scale vector features by the mean and std of the train rows.
        text_columns: columns to read as text even where values look like numbers (comma-separated).
    """

    def __init__(
        self, source: str = "", columns: str = "", label: str = "", test_size: float = 0.2, text_length: int = 32,
        val_size: float = DEFAULT_VAL_SIZE, seed: int = 0, test_source: str = "", validation_source: str = "",
        standardize: bool = True, text_columns: str = "",
    ) -> None:
        if not source:
            raise ValueError("set the data file with --set task.table.source=PATH (parquet, csv, json or jsonl, "
                             "or a directory holding train and test files)")
        if not columns:
            raise ValueError("set the modality columns with --set task.table.columns=a,b,c (or name=col1+col2,...)")
        if not 0 < test_size < 1:
            raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size}")
        if text_length < 1:
            raise ValueError(f"text_length must be >= 1, got {text_length}")
        check_val_size(val_size)
        self.mapping = parse_columns(columns)
        mapped = {c for cols in self.mapping.values() for c in cols}
        self.text_columns = [c.strip() for c in text_columns.split(",") if c.strip()]
        unknown = [c for c in self.text_columns if c not in mapped]
        if unknown:
            raise ValueError(f"text_columns names {unknown[0]!r}, which columns does not map; "
                             f"mapped columns: {', '.join(sorted(mapped))}")
        self.source, self.test_source, self.validation_source = source, test_source, validation_source
        self.label, self.val_size, self.standardize = label, val_size, standardize
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

    def _roles(self, sources: dict[str, Source]) -> tuple[str, str | None, str | None]:
        """The source splits that serve as (train, test, validation); hub splits may be spelt "valid" or "dev"."""
        by_role: dict[str, str] = {}
        for name in sources:  # the first of each role wins
            by_role.setdefault(SPLIT_NAMES.get(name.lower(), name), name)
        test, validation = by_role.get("test"), by_role.get("validation")
        train = by_role.get("train") or next((n for n in sources if n not in (test, validation)), None)
        if train is None:
            raise DataError(f"task 'table': {self.source!r} has no train split (it has {', '.join(sources)})")
        return train, test, validation

    def _parts(self, sources: dict[str, Source], labels: dict[str, np.ndarray]) -> dict[str, tuple[str, np.ndarray]]:
        """``{"train"|"validation"|"test": (source split, its rows)}``: shipped splits whole, the rest carved."""
        train, test, validation = self._roles(sources)
        n = len(sources[train].frame)
        if test is not None:
            parts = {"train": (train, np.arange(n)), "test": (test, np.arange(len(sources[test].frame)))}
        else:
            train_rows, test_rows = self.split_rows(n, labels.get(train))
            parts = {"train": (train, train_rows), "test": (train, test_rows)}
        if validation is not None:
            parts["validation"] = (validation, np.arange(len(sources[validation].frame)))
            return parts
        # validation comes out of the train rows before any statistic is fitted on them
        rows = parts["train"][1]
        try:
            kept, held_out = validation_rows(len(rows), labels[train][rows] if train in labels else None,
                                             self.val_size, self.seed)
        except ValueError as exc:
            raise DataError(f"task 'table': {exc}") from None
        parts["train"], parts["validation"] = (train, rows[kept]), (train, rows[held_out])
        return parts

    def load(self) -> TaskData:
        read = read_source(self.source, self.test_source, self.validation_source)
        sources = {name: read[name] for name in self._roles(read) if name is not None}  # e.g. no "unsupervised"
        labels, num_classes = label_ids(sources, self.label) if self.label else ({}, None)
        parts = self._parts(sources, labels)
        # Check and convert every column on the source as it is, so errors name rows as the user numbers them.
        columns = {
            split: {c: column_values(source, c, c in self.text_columns) for cs in self.mapping.values() for c in cs}
            for split, source in sources.items()
        }

        def take(values: Any, rows: np.ndarray) -> Any:
            return [values[i] for i in rows] if isinstance(values, list) else values[rows]

        modalities: list[Modality] = []
        inputs: dict[str, dict[str, Any]] = {part: {} for part in parts}
        for name, cols in self.mapping.items():
            kinds = {columns[split][c][1] for split in columns for c in cols}
            if len(cols) > 1 and kinds != {VECTOR}:
                raise DataError(f"task 'table', modality {name!r}: only numeric vector columns can be joined with '+', "
                                f"but {'+'.join(cols)} includes {', '.join(sorted(kinds - {VECTOR}))} columns")
            if len(kinds) > 1:
                raise DataError(f"task 'table', column {cols[0]!r} holds {' and '.join(sorted(kinds))} in different splits")
            kind = kinds.pop()
            values = {part: [take(columns[split][c][0], rows) for c in cols] for part, (split, rows) in parts.items()}
            if kind == TEXT:
                tokenizer = WordTokenizer.fit(values["train"][0])
                longest = max(len(words(t)) for texts in values.values() for t in texts[0])
                length = min(self.text_length, max(1, longest))
                for part, texts in values.items():
                    inputs[part][name] = tokenizer.encode(texts[0], length)
                modalities.append(Modality(name, TEXT, (length,), info=tokenizer.info()))
                continue
            arrays = {part: np.concatenate(a, axis=1) if kind == VECTOR else a[0] for part, a in values.items()}
            shapes = {part: a.shape[1:] for part, a in arrays.items()}
            if len(set(shapes.values())) > 1:
                shown = ", ".join(f"{part} rows {shape}" for part, shape in shapes.items())
                raise DataError(f"task 'table', modality {name!r}: the splits' rows differ in shape: {shown}")
            if kind == VECTOR and self.standardize:
                arrays = standardise(arrays)
            for part, array in arrays.items():
                inputs[part][name] = array
            modalities.append(Modality(name, kind, tuple(shapes["train"])))
        split_labels = {part: labels[split][rows] if labels else None for part, (split, rows) in parts.items()}
        return TaskData(
            modalities,
            Split(inputs["train"], split_labels["train"]),
            Split(inputs["test"], split_labels["test"]),
            num_classes=num_classes,
            validation=Split(inputs["validation"], split_labels["validation"]),
        )
