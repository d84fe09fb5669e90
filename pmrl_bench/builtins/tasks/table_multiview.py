"""The views and the labels of a multi-view array file (``.mat``, ``.npz``, ``.h5``): found under the keys the
multi-view community uses (or the ones named), picked (``views=``), turned to n × d (a view stored d × n is
recognised by the instance count and transposed, with one line saying so), densified after a memory check, and
checked, so that every problem is one line naming the file, the key and what was expected."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pmrl_bench.builtins.tasks.table_arrayfiles import ArrayFile, Entries, Text, Unreadable, open_array_file
from pmrl_bench.console import say
from pmrl_bench.errors import DataError

# Where multi-view sets keep their views and their labels, most common first; matched exactly, then ignoring case.
VIEW_KEYS = ("X", "data", "fea", "views", "features")
LABEL_KEYS = ("Y", "y", "gt", "truth", "labels", "label", "gnd", "target", "targets", "class")
# A densified sparse view may take at most this share of the memory free when it is read.
DENSE_MEMORY_SHARE = 0.5
FLOAT32_MAX = float(np.finfo(np.float32).max)
_NUMBERED = re.compile(r"^(.*?)(\d+)$")
_SAFE_NAME = re.compile(r"[^\w.-]")


@dataclass(frozen=True)
class ViewKeys:
    """What the user said about a multi-view file: where the views and the labels are, and which views to use."""

    views_key: str = ""  # one key (a cell array, list, group or 3-D stack) or several comma-separated keys
    label_key: str = ""
    views: str = ""  # comma-separated view indices (0-based) or names; empty: every view


@dataclass
class MultiView:
    """A multi-view file as read: views ``{name: (n, d) array}`` (n × h × w for stacks of images), where each
    one is in the file (``X{2}``, ``'X/pix'``), and the labels (raw values) with their key."""

    views: dict[str, np.ndarray]
    where: dict[str, str]
    labels: np.ndarray | None = None
    label_key: str | None = None


@dataclass(eq=False)  # compared by identity: a view's value is an array
class _View:
    name: str
    where: str
    value: Any


def read_multiview(path: Path, keys: ViewKeys, progress: Any = None) -> MultiView:
    """The views and labels of ``path``; ``progress(iterable, total)`` wraps the per-view conversion when given."""
    file_name = str(path)
    with open_array_file(path) as opened:
        label_key, labels = _find_labels(opened, keys.label_key)
        views = _pick(_find_views(opened, keys.views_key, label_key), keys.views, file_name)
    for view in views:
        _check_numeric(view, file_name)
    n = _instances(views, labels, label_key, file_name)
    arrays: dict[str, np.ndarray] = {}
    steps = views if progress is None else progress(views, len(views))
    for view in steps:
        arrays[view.name] = _dense(_oriented(view, n, label_key, file_name), view, file_name)
    if labels is None:  # said, not an error: retrieval needs no labels, but the user may have meant some
        say(f"task 'table': {file_name} holds no labels under {', '.join(LABEL_KEYS[:-1])} or {LABEL_KEYS[-1]}; "
            "without them only retrieval is scored (name their key with --set task.table.label_key=KEY)")
    return MultiView(arrays, {v.name: v.where for v in views}, labels, label_key)


# -- finding the views and the labels ----------------------------------------------------------------------------------


def _match(keys: list[str], wanted: tuple[str, ...]) -> str | None:
    for name in wanted:
        if name in keys:
            return name
    folded = {k.lower(): k for k in keys}
    return next((folded[name.lower()] for name in wanted if name.lower() in folded), None)


def _numbered_groups(keys: list[str], exclude: str | None) -> dict[str, list[str]]:
    """Keys numbered under one prefix (``X1, X2``, ``arr_0, arr_1``, ``view_1, view_2``), two or more, in order."""
    groups: dict[str, list[tuple[int, str]]] = {}
    for key in keys:
        match = _NUMBERED.match(key)
        if match and key != exclude:
            groups.setdefault(match[1], []).append((int(match[2]), key))
    return {prefix: [k for _, k in sorted(members)] for prefix, members in groups.items() if len(members) >= 2}


def _find_views(opened: ArrayFile, views_key: str, label_key: str | None) -> list[_View]:
    keys, name = opened.keys(), str(opened.path)
    named = [k.strip() for k in views_key.split(",") if k.strip()]
    if len(named) > 1:  # one view per key, named by its key
        missing = [k for k in named if k not in keys]
        if missing:
            raise DataError(f"task 'table': {name} has no key {missing[0]!r} (views_key); its keys: {_listed(keys)}")
        return [_View(_safe(k, i), f"'{k}'", opened.get(k)) for i, k in enumerate(named)]
    groups = _numbered_groups(keys, label_key)
    key = named[0] if named else _match(keys, VIEW_KEYS)
    if named and key not in keys and key in groups:  # views_key=X for keys X1, X2, ...
        return [_View(f"v{i}", f"'{k}'", opened.get(k)) for i, k in enumerate(groups[key])]
    if named and key not in keys:
        raise DataError(f"task 'table': {name} has no key {key!r} (views_key); its keys: {_listed(keys)}")
    if key is None:
        if len(groups) == 1:
            [members] = groups.values()
            return [_View(f"v{i}", f"'{k}'", opened.get(k)) for i, k in enumerate(members)]
        raise DataError(f"task 'table': {name} holds no views under {', '.join(VIEW_KEYS)} or numbered keys "
                        f"(X1, X2, ...); its keys: {_listed(keys)}; name the key that holds them with "
                        "--set task.table.views_key=KEY (or KEY1,KEY2,... for one key per view)")
    return _views_under(key, opened.get(key), name)


def _views_under(key: str, value: Any, name: str) -> list[_View]:
    if isinstance(value, Entries):
        return [_View(_safe(item, i) if item is not None else f"v{i}", value.element(key, i), v)
                for i, (item, v) in enumerate(value.items)]
    if isinstance(value, np.ndarray) and value.ndim == 3:  # views of one width stacked: (views, n, d)
        return [_View(f"v{i}", f"{key}[{i}]", value[i]) for i in range(value.shape[0])]
    what = _describe(value)
    raise DataError(f"task 'table': {name}, key {key!r} holds {what}; expected the views: a cell array or list of "
                    "n × d matrices, a group of them, or a views × n × d array (name one key per view with "
                    "--set task.table.views_key=KEY1,KEY2,...)")


def _find_labels(opened: ArrayFile, label_key: str) -> tuple[str | None, np.ndarray | None]:
    keys, name = opened.keys(), str(opened.path)
    if label_key and label_key not in keys:
        raise DataError(f"task 'table': {name} has no key {label_key!r} (label_key); its keys: {_listed(keys)}")
    key = label_key or _match(keys, LABEL_KEYS)
    if key is None:
        return None, None
    value = opened.get(key)
    if isinstance(value, Entries) and all(isinstance(v, Text) for _, v in value.items):  # class names
        return key, np.array([v.value for _, v in value.items], dtype=object)
    if isinstance(value, np.ndarray) and value.dtype.kind in "US" and value.ndim <= 2:  # class names, as strings
        if value.ndim > 1 and sorted(value.shape)[-2] > 1:
            raise DataError(f"task 'table': {name}, labels under {key!r}: shape {_shape(value.shape)}; expected a "
                            "vector of class names, one per instance")
        return key, value.reshape(-1).astype(object)
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        raise DataError(f"task 'table': {name}, labels under {key!r}: hold {_describe(value)}; expected a vector "
                        "of class ids (numbers) or a cell array of class names")
    if value.ndim > 1 and sorted(value.shape)[-2] > 1:
        raise DataError(f"task 'table': {name}, labels under {key!r}: shape {_shape(value.shape)}; expected a "
                        "vector of class ids, one per instance (one-hot or multi-label matrices are not read)")
    return key, value.reshape(-1)


def _pick(views: list[_View], spec: str, name: str) -> list[_View]:
    """The views ``spec`` names (0-based indices or names, in its order), or all of them."""
    if not spec.strip():
        picked = views
    else:
        by_name = {v.name: v for v in views}
        picked = []
        for item in (s.strip() for s in spec.split(",") if s.strip()):
            view = by_name.get(item)
            if view is None and item.lstrip("-").isdigit() and 0 <= int(item) < len(views):
                view = views[int(item)]
            if view is None:
                raise DataError(f"task 'table': {name} has no view {item!r} (views); it has {len(views)}: "
                                f"{', '.join(v.name for v in views)} (or their indices 0-{len(views) - 1})")
            if any(view is p for p in picked):
                raise DataError(f"task 'table': views names view {view.name!r} of {name} twice")
            picked.append(view)
    if len(picked) < 2:
        raise DataError(f"task 'table': {name} gives {len(picked)} view ({', '.join(v.where for v in picked)}); "
                        "multimodal objectives need at least 2")
    return picked


# -- shaping and checking each view ------------------------------------------------------------------------------------


def _check_numeric(view: _View, name: str) -> None:
    value = view.value
    if not (_is_sparse(value) or (isinstance(value, np.ndarray) and value.dtype.kind in "biuf")):
        raise DataError(f"task 'table': {name}, view {view.name!r} ({view.where}) holds {_describe(value)}; "
                        "expected a numeric n × d matrix")
    if value.ndim == 0 or 0 in value.shape:
        raise DataError(f"task 'table': {name}, view {view.name!r} ({view.where}) is empty "
                        f"({_shape(value.shape)}); expected an n × d matrix with n, d >= 1")
    if value.ndim > 4:
        raise DataError(f"task 'table': {name}, view {view.name!r} ({view.where}) has {value.ndim} dimensions "
                        f"({_shape(value.shape)}); expected n × d (a vector per instance) or n × h × w [× c]")


def _instances(views: list[_View], labels: np.ndarray | None, label_key: str | None, name: str) -> int:
    """The instance count: the labels' length, else the one size every view has (as rows or as columns)."""
    shapes = ", ".join(f"{v.name} {_shape(v.value.shape)}" for v in views)
    # a matrix's instances are its rows or (stored d × n) its columns; an image stack's come first
    sizes = [{v.value.shape[0], v.value.shape[-1]} if v.value.ndim == 2 else {v.value.shape[0]} for v in views]
    common = set.intersection(*sizes)
    if labels is not None:
        n = len(labels)
        if n in common:
            return n
        stored = {v.value.shape[0] for v in views}
        if len(stored) == 1 or len(common) == 1:  # the views agree with each other: the labels are off
            rows = stored.pop() if len(stored) == 1 else common.pop()
            raise DataError(f"task 'table': {name}, the labels under {label_key!r} hold {n} values, but the views "
                            f"have {rows} rows ({shapes}); expected one label per instance")
        raise DataError(f"task 'table': {name}, the views do not all have {n} rows, one per label under "
                        f"{label_key!r} ({shapes}); every view needs one row per instance")
    if not common:
        raise DataError(f"task 'table': {name}, the views have different row counts ({shapes}); every view needs "
                        "one row per instance")
    by_rows = [v.value.shape[0] for v in views]
    return max(common, key=lambda c: (by_rows.count(c), c))  # rows as stored win a tie: transpose only the odd ones


def _oriented(view: _View, n: int, label_key: str | None, name: str) -> Any:
    value = view.value
    if value.ndim == 1:
        return value.reshape(-1, 1)
    if value.shape[0] == n or value.ndim > 2:
        return value
    by = f"the {n} labels under {label_key!r}" if label_key else f"the {n} rows of the other views"
    say(f"task 'table': {name}, view {view.name!r} ({view.where}) is stored {value.shape[0]} × {n} (features × "
        f"instances, by {by}); transposed to {n} × {value.shape[0]}")
    return value.T


def _dense(value: Any, view: _View, name: str) -> np.ndarray:
    if not _is_sparse(value):
        return np.ascontiguousarray(value)
    rows, cols = value.shape
    need = rows * cols * 4  # float32, the dtype every modality is trained in
    free = available_memory()
    if need > DENSE_MEMORY_SHARE * free:
        raise DataError(f"task 'table': {name}, view {view.name!r} ({view.where}) is sparse, {rows} × {cols} with "
                        f"{value.nnz} non-zeros; dense it needs {human_size(need)}, more than half the "
                        f"{human_size(free)} of memory free; leave it out with --set task.table.views=... "
                        "or reduce its features")
    data = np.asarray(value.data)
    finite = data[np.isfinite(data)]
    if finite.size and np.abs(finite).max() > FLOAT32_MAX:
        raise DataError(f"task 'table': {name}, view {view.name!r} ({view.where}) holds "
                        f"{np.abs(finite).max():.4g}, beyond float32's range (±{FLOAT32_MAX:.3g}); rescale it")
    return value.astype(np.float32).toarray()


def available_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


# -- wording -----------------------------------------------------------------------------------------------------------


def _is_sparse(value: Any) -> bool:
    import scipy.sparse

    return scipy.sparse.issparse(value)


def _describe(value: Any) -> str:
    if isinstance(value, Entries):
        return f"a {value.kind} of {len(value.items)}"
    if isinstance(value, Text):
        return f"text ({value.value[:20]!r})"
    if isinstance(value, Unreadable):
        return value.what
    if _is_sparse(value):
        return f"a sparse {_shape(value.shape)} matrix"
    if isinstance(value, np.ndarray):
        kind = {"b": "booleans", "i": "integers", "u": "integers", "f": "numbers", "U": "text", "S": "text"}.get(
            value.dtype.kind, str(value.dtype))
        return f"one {_shape(value.shape)} array of {kind}"
    return f"a {type(value).__name__}"


def _shape(shape: tuple[int, ...]) -> str:
    return " × ".join(map(str, shape)) if shape else "a scalar"


def _safe(name: str, index: int) -> str:
    """A view's name from the file as a modality name: letters, digits, ``_ . -`` (``a b`` -> ``a_b``)."""
    cleaned = _SAFE_NAME.sub("_", name).strip("_")
    return cleaned or f"v{index}"


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:20])
    return (shown + f", ... ({len(keys)} in all)") if len(keys) > 20 else (shown or "none")


def human_size(n_bytes: float) -> str:
    """``5.2 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:.1f} {unit}" if unit != "B" else f"{int(n_bytes)} B"
        n_bytes /= 1024
    return f"{n_bytes:.1f} TiB"
