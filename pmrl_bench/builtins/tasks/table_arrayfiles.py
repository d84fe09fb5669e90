"""Opening the array files multi-view sets are published in: MATLAB ``.mat`` (v4/v5 through ``scipy.io``, v7.3
through ``h5py``), ``.npz`` and HDF5 (``.h5``/``.hdf5``). Each file is a set of named top-level values; a value is
a numeric array, a sparse matrix, :class:`Entries` (a cell array, a list, a struct or a group of values) or
:class:`Unreadable` (text, a complex or pickled array), so the caller can say what a key holds in one line.

MATLAB stores arrays column-major, so a v7.3 file holds an n × d matrix as a d × n HDF5 dataset: values carrying
MATLAB's ``MATLAB_class`` attribute are transposed back here, and the caller sees the shapes MATLAB shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pmrl_bench.errors import DataError

ARRAY_SUFFIXES = (".mat", ".npz", ".h5", ".hdf5")
# HDF5 names MATLAB v7.3 keeps for itself: the targets of cell references, and class metadata.
_MATLAB_INTERNAL = ("#refs#", "#subsystem#")


@dataclass(frozen=True)
class Entries:
    """An ordered collection of values under one key: ``[(name or None, value), ...]``. Names come from the file
    (struct fields, group members); cell and list elements have none."""

    items: list[tuple[str | None, Any]]
    kind: str  # "cell array", "struct", "group", "list": how the error lines name it
    notation: str = "{}"  # how one element is written: "{}" (MATLAB X{2}, 1-based) or "[]" (X[1], 0-based)

    def element(self, key: str, index: int) -> str:
        name = self.items[index][0]
        if name is not None:
            return f"'{key}/{name}'"
        return f"{key}{{{index + 1}}}" if self.notation == "{}" else f"{key}[{index}]"


@dataclass(frozen=True)
class Unreadable:
    """A value that is not numbers: ``what`` says what it is ("text", "a struct array", ...)."""

    what: str


@dataclass(frozen=True)
class Text:
    """A string (a MATLAB char array): readable as a class label, not as a view."""

    value: str


class ArrayFile:
    """An opened array file: ``kind`` ("MATLAB v5", "MATLAB v7.3", "npz", "HDF5"), its keys, and their values."""

    def __init__(self, path: Path, kind: str, keys: list[str], getter: Any) -> None:
        self.path, self.kind, self._keys, self._get = path, kind, keys, getter

    def keys(self) -> list[str]:
        return list(self._keys)

    def get(self, key: str) -> Any:
        return self._get(key)


@contextmanager
def open_array_file(path: Path) -> Iterator[ArrayFile]:
    """The file at ``path`` opened for reading, whatever of the supported formats it is in."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        yield from _npz(path)
    elif suffix == ".mat" and not _is_hdf5(path):
        yield _matlab_v5(path)
    else:
        yield from _hdf5(path, "MATLAB v7.3" if suffix == ".mat" else "HDF5")


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as handle:  # v7.3 files are HDF5 behind a 512-byte MATLAB header
        for offset in (0, 512):
            handle.seek(offset)
            if handle.read(8) == b"\x89HDF\r\n\x1a\n":
                return True
    return False


# -- MATLAB v4/v5 ------------------------------------------------------------------------------------------------------


def _matlab_v5(path: Path) -> ArrayFile:
    import scipy.io

    try:
        listing = scipy.io.whosmat(str(path))
    except Exception as exc:  # noqa: BLE001 - scipy raises ValueError, MatReadError, TypeError on foreign files
        raise DataError(f"task 'table': {str(path)!r} is not a MATLAB file scipy.io can read "
                        f"({_first_line(exc)}); save it with MATLAB's save, or scipy.io.savemat") from None

    def get(key: str) -> Any:
        try:
            loaded = scipy.io.loadmat(str(path), variable_names=[key], squeeze_me=False, chars_as_strings=True)
        except Exception as exc:  # noqa: BLE001 - as above: one line naming the key
            raise DataError(f"task 'table': scipy.io cannot read {key!r} of {str(path)!r}: "
                            f"{_first_line(exc)}") from None
        return _matlab_value(loaded[key])

    return ArrayFile(path, "MATLAB v5", [name for name, _, _ in listing], get)


def _matlab_value(value: Any, top: bool = True) -> Any:
    """A loadmat value as an array, a sparse matrix, Entries, Text or Unreadable."""
    import scipy.sparse

    if scipy.sparse.issparse(value):
        return value
    if not isinstance(value, np.ndarray):
        return Unreadable(f"a {type(value).__name__}")
    if value.dtype.names is not None:  # a struct: its fields, when it is one struct and not an array of them
        if value.size != 1 or not top:
            return Unreadable("a struct array" if value.size != 1 else "a struct")
        record = value.reshape(-1)[0]
        return Entries([(name, _matlab_value(record[name], top=False)) for name in value.dtype.names], "struct")
    if value.dtype.kind in "US":
        return Text("".join(np.asarray(value, dtype=str).reshape(-1)))
    if value.dtype == object:
        cells = [_unwrap(cell) for cell in value.reshape(-1, order="F")]  # MATLAB's order: column-major
        if not top:
            return Unreadable("a cell array")
        return Entries([(None, _matlab_value(cell, top=False)) for cell in cells], "cell array")
    if value.dtype.kind == "c":
        return Unreadable("complex numbers")
    return value


def _unwrap(cell: Any) -> Any:
    # A cell holding a 1 × 1 cell holding the matrix: the matrix.
    while isinstance(cell, np.ndarray) and cell.dtype == object and cell.size == 1:
        cell = cell.reshape(-1)[0]
    return cell


# -- HDF5 and MATLAB v7.3 ----------------------------------------------------------------------------------------------


def _hdf5(path: Path, kind: str) -> Iterator[ArrayFile]:
    try:
        import h5py
    except ImportError:
        raise DataError(f"task 'table': reading {path.name} ({kind}) needs h5py: pip install 'pmrl-bench[data]'"
                        ) from None
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"task 'table': {str(path)!r} is not an HDF5 file h5py can read ({_first_line(exc)}); "
                        "a .mat file must be MATLAB v4-v7.3, an .h5/.hdf5 file HDF5") from None
    with handle:
        keys = [name for name in _members(handle) if name not in _MATLAB_INTERNAL]
        yield ArrayFile(path, kind, keys, lambda key: _hdf5_value(handle, handle[key], top=True))


def _members(group: Any) -> list[str]:
    """A group's member names in creation order where the file tracks it, else in natural order (v2 after v1,
    v10 after v9), never h5py's alphabetical v10 before v2."""
    if group.id.get_create_plist().get_link_creation_order():
        return list(group.keys())
    return sorted(group.keys(), key=lambda name: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)])


def _hdf5_value(handle: Any, node: Any, top: bool) -> Any:
    import h5py

    matlab_class = _attr(node, "MATLAB_class")
    if isinstance(node, h5py.Group):
        if "MATLAB_sparse" in node.attrs:
            return _matlab_sparse(node)
        if not top:
            return Unreadable("a group" if matlab_class is None else f"a {matlab_class}")
        return Entries([(name, _hdf5_value(handle, node[name], top=False)) for name in _members(node)],
                       "struct" if matlab_class == "struct" else "group")
    if h5py.check_dtype(ref=node.dtype) is not None:  # a cell array: references to the cells
        if not top:
            return Unreadable("a cell array")
        refs = np.asarray(node[()])
        refs = refs.T if matlab_class is not None else refs  # column-major MATLAB order, as for every array
        return Entries([(None, _hdf5_value(handle, handle[ref], top=False)) for ref in refs.reshape(-1, order="F")],
                       "cell array")
    if "MATLAB_empty" in node.attrs and int(np.asarray(node.attrs["MATLAB_empty"]).reshape(-1)[0]):
        return np.zeros(tuple(int(d) for d in np.asarray(node[()]).reshape(-1)[::-1]))
    value = np.asarray(node[()])
    if matlab_class == "char":
        return Text("".join(chr(c) for c in value.T.reshape(-1)))
    if value.dtype.names is not None:
        return Unreadable("records (a compound dataset)")
    if value.dtype.kind in "USO":  # h5py strings: one is a Text, more an array of str (class names, say)
        strings = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in value.reshape(-1)])
        return Text(str(strings[0])) if value.size == 1 else strings.reshape(value.shape)
    if value.dtype.kind == "c":
        return Unreadable("complex numbers")
    return value.T if matlab_class is not None else value


def _matlab_sparse(group: Any) -> Any:
    """A v7.3 sparse matrix: MATLAB's compressed columns (data, row indices ir, column pointers jc)."""
    import scipy.sparse

    rows = int(np.asarray(group.attrs["MATLAB_sparse"]).reshape(-1)[0])
    jc = np.asarray(group["jc"][()], dtype=np.int64)
    data = np.asarray(group["data"][()], dtype=np.float64) if "data" in group else np.zeros(0)
    ir = np.asarray(group["ir"][()], dtype=np.int64) if "ir" in group else np.zeros(0, dtype=np.int64)
    return scipy.sparse.csc_matrix((data, ir, jc), shape=(rows, len(jc) - 1))


def _attr(node: Any, name: str) -> str | None:
    value = node.attrs.get(name)
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(np.asarray(value).reshape(-1)[0])


# -- npz ---------------------------------------------------------------------------------------------------------------


def _npz(path: Path) -> Iterator[ArrayFile]:
    import zipfile

    try:
        handle = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"task 'table': {str(path)!r} is not an .npz file numpy can read ({_first_line(exc)}); "
                        "write one with numpy.savez") from None

    def get(key: str) -> Any:
        try:
            value = handle[key]
        except ValueError:  # an object array: loading it would unpickle, which can run code
            return Unreadable("an array of Python objects (pmrl-bench does not unpickle files; save each view as "
                              "its own array: numpy.savez(path, *views, Y=labels))")
        return Unreadable("complex numbers") if value.dtype.kind == "c" else value  # strings: class names, say

    with handle:
        yield ArrayFile(path, "npz", list(handle.files), get)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
