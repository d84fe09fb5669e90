"""Reading the ``table`` task's sources: local files (one file, a directory of published splits, or files named one
by one) through ``datasets`` or pandas, and hub names from the local cache, quietly, with every row's origin kept
so that errors name the row as the file numbers it."""

from __future__ import annotations

import logging
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
from pmrl_bench.errors import DataError

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
                            f"Hugging Face cache; to download it from the hub, set {ENV_HUB}=1 "
                            "(needs internet)") from None
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
        raise DataError(f"task 'table': reading {path.name} needs {exc.name or 'pyarrow'}: "
                        "pip install 'pmrl-bench[data]'") from None
    except ValueError as exc:
        raise DataError(f"task 'table': pandas cannot read {str(path)!r}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# -- columns -----------------------------------------------------------------------------------------------------------
