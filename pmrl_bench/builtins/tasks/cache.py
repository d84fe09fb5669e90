"""An on-disk cache of verified task arrays, kept with Hugging Face ``datasets`` when it is installed.

``datasets`` is an optional extra (``pip install 'pmrl-bench[data]'``, about 400 MB), so every caller works
without it: the cache then simply misses and the task parses its source files again. The cache stores Arrow
files (``Dataset.save_to_disk``), which load memory-mapped on the next run.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

ENV_CACHE = "PMRL_BENCH_CACHE"


def cache_root() -> Path:
    """``$PMRL_BENCH_CACHE``, else ``$XDG_CACHE_HOME/pmrl-bench``, else ``~/.cache/pmrl-bench``."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pmrl-bench"


def datasets_installed() -> bool:
    return importlib.util.find_spec("datasets") is not None


def load_arrays(key: str) -> dict[str, np.ndarray] | None:
    """The arrays cached under ``key``, or None when there is no usable cache entry (or no ``datasets``)."""
    path = cache_root() / key
    if not datasets_installed() or not path.is_dir():
        return None
    from datasets import load_from_disk

    try:
        columns = load_from_disk(str(path)).with_format("numpy")[:]  # fixed-length lists come back as 2-D arrays
        return {name: np.asarray(values) for name, values in columns.items()}
    except Exception:  # a damaged or foreign cache entry is a miss, never a failure: the source is still there
        return None


def save_arrays(key: str, arrays: dict[str, np.ndarray]) -> bool:
    """Cache row-aligned 1-D or 2-D arrays under ``key`` (atomically: a reader never sees half an entry). False when
    ``datasets`` is missing or the cache directory is not writable; the caller just goes on uncached."""
    if not datasets_installed():
        return False
    from datasets import Dataset, Features, List, Value, disable_progress_bars

    disable_progress_bars()
    features = Features({
        name: Value(str(v.dtype)) if v.ndim == 1 else List(Value(str(v.dtype)), length=v.shape[1])
        for name, v in arrays.items()
    })
    target = cache_root() / key
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
        Dataset.from_dict(dict(arrays), features=features).save_to_disk(str(staging / "data"))
        try:
            (staging / "data").rename(target)
        except OSError:  # another process cached it first; theirs is as good as ours
            pass
        shutil.rmtree(staging, ignore_errors=True)
        return True
    except OSError:
        return False
