"""Reading the ``table`` task's sources: local files (one file, a directory of published splits, or files named one
by one) through ``datasets`` or pandas, and hub names from the local cache, quietly, with every row's origin kept
so that errors name the row as the file numbers it."""

from __future__ import annotations

import csv
import logging
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from pmrl_bench.builtins.tasks import cache
from pmrl_bench.builtins.tasks.table_arrayfiles import ARRAY_SUFFIXES
from pmrl_bench.builtins.tasks.table_multiview import ViewKeys, human_size, read_multiview
from pmrl_bench.console import progress_label, say
from pmrl_bench.errors import DataError, UsageError

READERS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json"}
SUFFIXES = (*READERS, *ARRAY_SUFFIXES)  # tables, then multi-view array files
# The largest source read without being asked (all its files together), and the variable that changes it: a
# table in memory takes several times its file's size, so a forgotten 40 GB file fails in one line, not in swap.
ENV_MAX_SIZE = "PMRL_BENCH_MAX_TABLE_SIZE"
DEFAULT_MAX_SIZE = 4 * 2**30
# Sources at least this large announce their reading, with a progress bar on a terminal.
PROGRESS_SIZE = 64 * 2**20
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
    # The source row of each frame row, once rows were dropped (missing=drop); None: row i is source row i.
    positions: Any = field(default=None, compare=False)
    csv: Path | None = None  # a CSV file, whose records may span lines (a quoted field holding a newline)

    def row(self, index: int) -> str:
        index = int(self.positions[index]) if self.positions is not None else index
        number = csv_record_line(self.csv, index) if self.csv is not None else index + self.first
        return f"{self.unit} {number} of {self.name} ({self.convention})"


def file_origin(path: Path) -> Origin:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return Origin(str(path), "line", 2, "1-based, the header is line 1", csv=path)
    if suffix == ".jsonl":
        return Origin(str(path), "line", 1, "1-based")
    return Origin(str(path))


@dataclass
class Source:
    """One split as read: a pandas DataFrame and where its rows come from. A multi-view file's views are
    ``views`` (``{name: (n, d) array}``, columns like the frame's), ``where`` says where each one is in the file,
    and its labels are the frame's ``label_column``."""

    frame: Any
    origin: Origin
    views: dict[str, np.ndarray] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)
    label_column: str | None = None

    @property
    def columns(self) -> list[str]:
        return [*self.views, *map(str, self.frame.columns)]

    def take(self, rows: np.ndarray) -> Source:
        """The rows ``rows`` only; errors still name rows as the source numbers them."""
        before = self.origin.positions
        positions = rows if before is None else np.asarray(before)[rows]
        return Source(self.frame.iloc[rows].reset_index(drop=True), replace(self.origin, positions=positions),
                      {name: values[rows] for name, values in self.views.items()}, self.where, self.label_column)


@lru_cache(maxsize=4)
def _csv_record_lines(path: Path, mtime: float, size: int) -> list[int]:
    """The line each record of a CSV file starts on (1-based; blank lines skipped, as pandas skips them)."""
    starts, previous = [], 0
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle)
        for record in reader:
            if record:
                starts.append(previous + 1)
            previous = reader.line_num
    return starts


def csv_record_line(path: Path, index: int) -> int:
    """The line data row ``index`` (0-based, the header not counted) of a CSV file starts on."""
    stat = path.stat()
    starts = _csv_record_lines(path, stat.st_mtime, stat.st_size)
    return starts[index + 1] if index + 1 < len(starts) else index + 2


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
        if split is None or path.suffix.lower() not in SUFFIXES or not path.is_file():
            continue
        if split in found:
            raise DataError(f"task 'table': directory {str(directory)!r} holds two {split} files, "
                            f"{found[split].name} and {path.name}; keep one")
        found[split] = path
    missing = [s for s in ("train", "test") if s not in found]
    if missing:
        raise DataError(f"task 'table': directory {str(directory)!r} holds no {' and no '.join(missing)} file; "
                        "a directory source needs train.EXT and test.EXT (optionally validation.EXT), "
                        f"EXT one of {', '.join(s.lstrip('.') for s in SUFFIXES)}")
    return found


def _local_file(text: str, what: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        raise DataError(f"task 'table': no file {text!r} (the {what}); give a {', '.join(SUFFIXES)} file")
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(f"task 'table': cannot read {text!r} (the {what}); use a {', '.join(SUFFIXES)} file")
    return path


def read_source(source: str, test_source: str = "", validation_source: str = "",
                keys: ViewKeys | None = None) -> dict[str, Source]:
    """``{split name: Source}`` from a file, a directory of split files, split files, or a hub name; ``keys`` say
    where a multi-view file's views and labels are, and which views to read."""
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
        warn_shared_files(files)
        return read_files(files, keys)
    if path.is_dir():
        return read_files(split_files(path), keys)
    if path.is_file():
        return read_files({"train": _local_file(source, "source")}, keys)
    if path.suffix.lower() in SUFFIXES or source.startswith((".", "/", "~")) or not HUB_NAME.match(source):
        raise DataError(f"task 'table': no file or directory {source!r}")
    return read_hub(source)


def warn_shared_files(files: dict[str, Path]) -> None:
    """One warning line when two splits are the same file: its rows are then both trained on and scored."""
    seen: dict[Path, str] = {}
    for split, path in files.items():
        first = seen.setdefault(path.resolve(), split)
        if first != split:
            what = {"train": "source", "test": "test_source", "validation": "validation_source"}
            say(f"warning: task 'table': {what[split]} is the same file as {what[first]} ({path}): every {split} "
                f"row is also a {first} row, so the {split} scores measure memory, not generalisation")


def is_multiview(path: Path) -> bool:
    return path.suffix.lower() in ARRAY_SUFFIXES


def read_files(files: dict[str, Path], keys: ViewKeys | None = None) -> dict[str, Source]:
    """Each split file as a Source: multi-view array files through :mod:`table_multiview`, tables through
    ``datasets`` (one ``load_dataset`` per format), else pandas. The size limit is checked first."""
    large = check_size(files)
    kinds = {is_multiview(path) for path in files.values()}
    if len(kinds) > 1:
        shown = ", ".join(f"{split} {path.name}" for split, path in files.items())
        raise DataError(f"task 'table': the splits mix multi-view array files and tables ({shown}); "
                        "give every split in one kind")
    if kinds == {True}:
        return {split: _multiview_source(path, keys or ViewKeys(), large) for split, path in files.items()}
    for path in files.values():
        if path.suffix.lower() == ".csv":
            check_csv_header(path)
    origins = {split: file_origin(path) for split, path in files.items()}
    if not cache.datasets_installed():
        return {split: Source(_read_with_pandas(path, large), origins[split]) for split, path in files.items()}
    from datasets import disable_progress_bars, enable_progress_bars, load_dataset

    # one bar per small file read would bury the sweep's own progress; a large one is worth watching
    enable_progress_bars() if large else disable_progress_bars()
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
                    frames[split] = _read_with_pandas(Path(name), large)
                except DataError:
                    raise DataError(f"task 'table': datasets cannot read {name!r}: {_first_line(exc)}") from None
    return {split: Source(frames[split], origins[split]) for split in files}


def max_size() -> int | None:
    """The size limit on a table source in bytes (``$PMRL_BENCH_MAX_TABLE_SIZE``: 8G, 500M, bytes; 0: none)."""
    text = os.environ.get(ENV_MAX_SIZE, "").strip()
    if not text:
        return DEFAULT_MAX_SIZE
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", text.lower())
    if match is None:
        raise UsageError(f"{ENV_MAX_SIZE}={text!r} is not a size; give bytes or a number with K, M, G or T "
                         "(e.g. 16G), or 0 for no limit")
    size = float(match[1]) * 1024 ** " kmgt".index(match[2] or " ")
    return None if size == 0 else int(size)


def check_size(files: dict[str, Path]) -> bool:
    """Refuse a source above the size limit before reading a byte of it; say so when reading a large one (True)."""
    total = sum(path.stat().st_size for path in files.values())
    names = ", ".join(str(path) for path in files.values())
    limit = max_size()
    if limit is not None and total > limit:
        raise DataError(f"task 'table': {names} holds {human_size(total)}, above the {human_size(limit)} a table "
                        "source may hold (in memory it takes several times its file size); to read it anyway, set "
                        f"{ENV_MAX_SIZE}=SIZE, e.g. {ENV_MAX_SIZE}=64G (0: no limit)")
    if total < PROGRESS_SIZE:
        return False
    say(f"task 'table': reading {human_size(total)} from {names}")
    return True


def check_csv_header(path: Path) -> None:
    """A CSV header naming a column twice is an error: pandas would rename the second one (``a.1``) and a
    ``columns=a`` would silently read the first."""
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        header = next((record for record in csv.reader(handle) if record), [])
    seen: dict[str, int] = {}
    for number, name in enumerate(header, 1):
        if name.strip() and name in seen:
            raise DataError(f"task 'table': {path} names column {name!r} twice in its header (line 1, columns "
                            f"{seen[name]} and {number}); rename one, so that each name means one column")
        seen.setdefault(name, number)


def _multiview_source(path: Path, keys: ViewKeys, progress: bool) -> Source:
    import pandas as pd

    def bar(views: Any, total: int) -> Any:
        from tqdm import tqdm

        return tqdm(views, total=total, desc=progress_label(f"{path.name} views"), unit="view", leave=False,
                    disable=None)

    read = read_multiview(path, keys, bar if progress else None)
    n = len(next(iter(read.views.values())))
    frame = (pd.DataFrame({read.label_key: read.labels}) if read.labels is not None and read.label_key
             else pd.DataFrame(index=pd.RangeIndex(n)))
    return Source(frame, Origin(str(path)), read.views, read.where, read.label_key)


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
                            f"Hugging Face cache; to download it from the hub, set {ENV_HUB}=1 "
                            "(needs internet)") from None
        raise DataError(f"task 'table': datasets cannot load {source!r} from the hub (offline, or no such "
                        f"dataset?): {_first_line(exc)}") from None
    return {name: Source(split.to_pandas(), Origin(f"split {name!r} of {source!r}")) for name, split in splits.items()}


def _read_with_pandas(path: Path, progress: bool = False) -> Any:
    suffix = path.suffix.lower()
    try:
        with warnings.catch_warnings(), _progress_stream(path, progress) as stream:
            warnings.simplefilter("ignore")  # e.g. a mixed-type column: the column checks name its bad row
            import pandas as pd

            if suffix == ".parquet":
                return pd.read_parquet(stream)
            if suffix == ".csv":
                return pd.read_csv(stream)
            return pd.read_json(stream, lines=suffix == ".jsonl")
    except ImportError as exc:
        raise DataError(f"task 'table': reading {path.name} needs {exc.name or 'pyarrow'}: "
                        "pip install 'pmrl-bench[data]'") from None
    except ValueError as exc:
        raise DataError(f"task 'table': pandas cannot read {str(path)!r}: {_first_line(exc)}") from None


@contextmanager
def _progress_stream(path: Path, progress: bool) -> Iterator[Any]:
    """``path`` itself, or (``progress``) the open file with a bar counting the bytes read (on a terminal):
    pandas reads a file in one call, with no progress of its own."""
    if not progress:
        yield path
        return
    from tqdm import tqdm

    with open(path, "rb") as raw, tqdm.wrapattr(
        raw, "read", total=path.stat().st_size, desc=progress_label(path.name), unit="B", unit_scale=True,
        unit_divisor=1024, leave=False, disable=None,
    ) as stream:
        yield stream


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# -- columns -----------------------------------------------------------------------------------------------------------
