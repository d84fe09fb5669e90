"""Multi-view array files as the ``table`` task's source: MATLAB v5 (scipy.io) and v7.3 (HDF5 laid out as MATLAB
writes it: column-major arrays, cell arrays as object references into ``#refs#``, sparse matrices as data/ir/jc
groups), .npz and .h5, in the layouts multi-view sets are published in; every view a modality without ``columns``;
missing values; and bad input as one line naming the file, the key and what was expected."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse

from pmrl_bench import create_task
from pmrl_bench.builtins.tasks import table_multiview
from pmrl_bench.cli import main
from pmrl_bench.errors import DataError, UsageError
from pmrl_bench.runner.fingerprint import data_fingerprint
from pmrl_bench.splits import content_order

needs_h5py = pytest.mark.skipif(importlib.util.find_spec("h5py") is None,
                                reason="MATLAB v7.3 and .h5 files need h5py (optional extra 'data')")

TINY = ["--objectives", "infonce", "--tasks", "table", "--steps", "5", "--batch-size", "8", "--dim", "8",
        "--seeds", "1", "--device", "cpu", "--no-progress"]


# -- writing the files ---------------------------------------------------------------------------------------------


def latent_views(n: int = 96, dims: tuple[int, ...] = (6, 5, 4), seed: int = 0, classes: int = 3,
                 ) -> tuple[list[np.ndarray], np.ndarray]:
    """Views sharing one latent vector, and 1-based class labels (as MATLAB sets code them) from the latent."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 4))
    views = [z @ rng.standard_normal((4, d)) + 0.1 * rng.standard_normal((n, d)) for d in dims]
    labels = 1 + np.digitize(z[:, 0], np.quantile(z[:, 0], np.linspace(0, 1, classes + 1)[1:-1]))
    return views, labels


def cell(values: list) -> np.ndarray:
    """A 1 × k MATLAB cell array for scipy.io.savemat."""
    out = np.empty((1, len(values)), dtype=object)
    for i, value in enumerate(values):
        out[0, i] = value
    return out


def write_mat_v5(path: Path, views: list, labels: np.ndarray | None, key: str = "X", label_key: str = "Y",
                 extra: dict | None = None) -> Path:
    content = {key: cell(views), **({} if labels is None else {label_key: np.asarray(labels).reshape(-1, 1)})}
    scipy.io.savemat(path, {**content, **(extra or {})})
    return path


def write_mat_v73(path: Path, views: list, labels: np.ndarray | None, key: str = "X", label_key: str = "Y") -> Path:
    """A MATLAB v7.3 file: a 512-byte MATLAB header, then HDF5 holding MATLAB's column-major layout."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as handle:
        refs = handle.create_group("#refs#")
        cells = []
        for i, view in enumerate(views):
            name = f"v{i}"
            if scipy.sparse.issparse(view):
                csc = scipy.sparse.csc_matrix(view)
                group = refs.create_group(name)
                group.attrs["MATLAB_class"] = np.bytes_("double")
                group.attrs["MATLAB_sparse"] = np.uint64(csc.shape[0])
                group.create_dataset("data", data=csc.data)
                group.create_dataset("ir", data=csc.indices.astype(np.uint64))
                group.create_dataset("jc", data=csc.indptr.astype(np.uint64))
                cells.append(group.ref)
            else:
                dataset = refs.create_dataset(name, data=np.asarray(view).T)  # column-major: MATLAB's n x d is d x n
                dataset.attrs["MATLAB_class"] = np.bytes_("double")
                cells.append(dataset.ref)
        views_dataset = handle.create_dataset(key, data=np.array([cells], dtype=h5py.ref_dtype).T)
        views_dataset.attrs["MATLAB_class"] = np.bytes_("cell")
        if labels is not None:
            label_dataset = handle.create_dataset(label_key, data=np.asarray(labels, dtype=np.float64).reshape(1, -1))
            label_dataset.attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as raw:
        raw.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 .")
    return path


def write_npz(path: Path, views: list, labels: np.ndarray | None) -> Path:
    """``numpy.savez(path, *views, Y=labels)``: the views are arr_0, arr_1, ..."""
    np.savez(path, *views, **({} if labels is None else {"Y": labels}))
    return path


def write_h5(path: Path, views: dict[str, np.ndarray], labels: np.ndarray | None, group: str = "views") -> Path:
    import h5py

    with h5py.File(path, "w") as handle:
        views_group = handle.create_group(group)
        for name, view in views.items():
            views_group.create_dataset(name, data=view)
        if labels is not None:
            handle.create_dataset("labels", data=labels)
    return path


def sparse(view: np.ndarray) -> scipy.sparse.csc_matrix:
    """The view with its small entries zeroed, as a sparse matrix (bag-of-words views are stored so)."""
    return scipy.sparse.csc_matrix(np.where(np.abs(view) > 0.5, view, 0.0))


LAYOUTS = {
    "mat v5, cell array under X": lambda d, v, y: write_mat_v5(d / "set.mat", v, y),
    "mat v5, a view stored d x n and a sparse view": lambda d, v, y: write_mat_v5(
        d / "set.mat", [v[0], v[1].T, sparse(v[2])], y),
    "mat v7.3, a view stored d x n and a sparse view": lambda d, v, y: write_mat_v73(
        d / "set.mat", [v[0], v[1].T, sparse(v[2])], y),
    "npz, a list of arrays": lambda d, v, y: write_npz(d / "set.npz", v, y),
    "h5, a group of named views": lambda d, v, y: write_h5(d / "set.h5", dict(zip(("pix", "fou", "zer"), v)), y),
}
NEEDS_H5PY = ("mat v7.3", "h5,")


def _layout(name: str):
    if name.startswith(NEEDS_H5PY) and importlib.util.find_spec("h5py") is None:
        pytest.skip("needs h5py (optional extra 'data')")
    return LAYOUTS[name]


def _stderr_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def _results(directory: Path) -> list[Path]:
    return sorted((directory / "results").rglob("*.json")) if (directory / "results").exists() else []


# -- layouts -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_view_of_each_layout_is_a_modality_with_its_rows_paired(tmp_path, layout):
    views, labels = latent_views()
    path = _layout(layout)(tmp_path, views, labels)
    data = create_task("table", source=str(path), standardize=False).load()
    names = ["pix", "fou", "zer"] if layout.startswith("h5") else ["v0", "v1", "v2"]
    by_name = dict(zip(names, views))
    # an .h5 group without tracked creation order lists its members in natural order
    assert [m.name for m in data.modalities] == (["fou", "pix", "zer"] if layout.startswith("h5") else names)
    assert {m.name: m.shape for m in data.modalities} == {n: (v.shape[1],) for n, v in by_name.items()}
    assert (len(data.train) + len(data.validation) + len(data.test), data.num_classes) == (96, 3)
    first = np.asarray(views[0], dtype=np.float32)
    for split in (data.train, data.validation, data.test):  # row i of every view (and label) is one instance
        rows = [int(np.flatnonzero((first == row).all(axis=1))[0]) for row in split.inputs[names[0]]]
        np.testing.assert_array_equal(split.labels, labels[rows] - 1)  # 1-based in the file, 0-based here
        expected = np.asarray(views[1], dtype=np.float32)[rows]
        np.testing.assert_allclose(split.inputs[names[1]], expected, rtol=1e-6)
        if "sparse" in layout:
            np.testing.assert_allclose(split.inputs["v2"], np.asarray(sparse(views[2]).todense())[rows], rtol=1e-6)


@needs_h5py
def test_one_set_saved_as_v5_v73_npz_and_h5_is_the_same_task_data(tmp_path):
    views, labels = latent_views()
    paths = [write_mat_v5(tmp_path / "set5.mat", [views[0], views[1].T, sparse(views[2])], labels),
             write_mat_v73(tmp_path / "set73.mat", [views[0], views[1].T, sparse(views[2])], labels),
             write_npz(tmp_path / "set.npz", [views[0], views[1], sparse(views[2]).toarray()], labels),
             write_h5(tmp_path / "set.h5", {"v0": views[0], "v1": views[1], "v2": sparse(views[2]).toarray()}, labels)]
    fingerprints = {data_fingerprint(create_task("table", source=str(path)).load()) for path in paths}
    assert len(fingerprints) == 1


@pytest.mark.parametrize("writer", ["mat v5", "mat v7.3"])
@pytest.mark.parametrize("count", [2, 3, 4, 5, 6])
def test_two_to_six_views_are_read(tmp_path, writer, count):
    if writer == "mat v7.3" and importlib.util.find_spec("h5py") is None:
        pytest.skip("needs h5py")
    views, labels = latent_views(n=40, dims=tuple(range(2, 2 + count)))
    write = write_mat_v5 if writer == "mat v5" else write_mat_v73
    data = create_task("table", source=str(write(tmp_path / "set.mat", views, labels))).load()
    assert [m.shape for m in data.modalities] == [(d,) for d in range(2, 2 + count)]


@pytest.mark.parametrize("layout", [name for name in LAYOUTS if "d x n" not in name] + [
    "mat v7.3, a view stored d x n and a sparse view"])
def test_a_multi_view_file_trains_through_the_command_line_without_columns(tmp_path, monkeypatch, capsys, layout):
    monkeypatch.chdir(tmp_path)
    views, labels = latent_views()
    path = _layout(layout)(tmp_path, views, labels)
    assert main(["run", *TINY, "--set", f"task.table.source={path.name}"]) == 0
    [result] = _results(tmp_path)
    content = json.loads(result.read_text())
    assert content["status"] == "ok" and content["splits"] == {"train": 64, "val": 12, "test": 20}
    assert len(content["metrics"]["retrieval"]) == 6  # every ordered pair of three views
    assert {"linear:fused"} <= set(content["metrics"]["classification"])
    if "d x n" in layout:
        assert [line for line in _stderr_lines(capsys) if "transposed" in line] == [
            f"pmrl-bench: task 'table': {path.name}, view 'v1' (X{{2}}) is stored 5 × 96 (features × instances, "
            "by the 96 labels under 'Y'); transposed to 96 × 5"]


# -- which views, which labels -------------------------------------------------------------------------------------


def test_views_picks_views_by_index_or_by_name_in_the_order_given(tmp_path):
    views, labels = latent_views(dims=(6, 5, 4, 3))
    path = write_mat_v5(tmp_path / "set.mat", views, labels)
    picked = create_task("table", source=str(path), views="0,2,3").load()
    assert [(m.name, m.shape) for m in picked.modalities] == [("v0", (6,)), ("v2", (4,)), ("v3", (3,))]
    by_name = create_task("table", source=str(path), views="v3,v1").load()
    assert [m.name for m in by_name.modalities] == ["v3", "v1"]


def test_labels_of_any_coding_and_class_names_are_mapped_to_class_ids(tmp_path):
    views, labels = latent_views(n=60)
    negative = write_mat_v5(tmp_path / "negative.mat", views, labels - 3)  # -2, -1, 0
    data = create_task("table", source=str(negative)).load()
    assert data.num_classes == 3 and set(np.unique(data.train.labels)) == {0, 1, 2}
    names = np.array(["cat", "dog", "emu"], dtype=object)[labels - 1]
    named = tmp_path / "named.mat"
    scipy.io.savemat(named, {"data": cell(views), "truth": cell(list(names))})  # a cell array of class names
    again = create_task("table", source=str(named)).load()
    np.testing.assert_array_equal(np.concatenate([again.train.labels, again.validation.labels, again.test.labels]),
                                  np.concatenate([data.train.labels, data.validation.labels, data.test.labels]))


def test_views_key_and_label_key_name_the_keys(tmp_path):
    views, labels = latent_views(n=60)
    path = tmp_path / "named.npz"
    np.savez(path, pix=views[0], fou=views[1], zer=views[2], cls=labels)
    data = create_task("table", source=str(path), views_key="pix,zer", label_key="cls").load()
    assert [m.name for m in data.modalities] == ["pix", "zer"] and data.num_classes == 3
    numbered = tmp_path / "numbered.mat"
    scipy.io.savemat(numbered, {"X1": views[0], "X2": views[1], "X3": views[2], "gnd": labels.reshape(-1, 1)})
    data = create_task("table", source=str(numbered)).load()  # X1, X2, X3 found as one set of views
    assert [m.shape for m in data.modalities] == [(6,), (5,), (4,)] and data.num_classes == 3


def test_a_file_without_labels_is_read_for_retrieval_with_one_line_saying_so(tmp_path, capsys):
    views, _ = latent_views(n=50)
    path = write_npz(tmp_path / "unlabelled.npz", [views[0], views[1].T, views[2]], None)
    data = create_task("table", source=str(path)).load()
    assert data.num_classes is None and data.train.labels is None
    assert [m.shape for m in data.modalities] == [(6,), (5,), (4,)]
    assert _stderr_lines(capsys) == [
        f"pmrl-bench: task 'table': {path}, view 'v1' ('arr_1') is stored 5 × 50 (features × instances, by the 50 "
        "rows of the other views); transposed to 50 × 5",
        f"pmrl-bench: task 'table': {path} holds no labels under Y, y, gt, truth, labels, label, gnd, target, "
        "targets or class; without them only retrieval is scored (name their key with "
        "--set task.table.label_key=KEY)"]


def test_a_directory_of_split_mat_files_is_the_published_split(tmp_path):
    views, labels = latent_views(n=100)
    published = tmp_path / "published"
    published.mkdir()
    write_mat_v5(published / "train.mat", [v[:80] for v in views], labels[:80])
    write_mat_v5(published / "test.mat", [v[80:] for v in views], labels[80:], label_key="gt")
    data = create_task("table", source=str(published), standardize=False).load()
    assert (len(data.train) + len(data.validation), len(data.test)) == (80, 20)
    order = content_order([v[80:] for v in views], labels[80:] - 1)  # tasks hand splits over in content order
    np.testing.assert_array_equal(data.test.labels, labels[80:][order] - 1)
    np.testing.assert_allclose(data.test.inputs["v1"], views[1][80:][order].astype(np.float32))


# -- missing values ------------------------------------------------------------------------------------------------


def test_a_nan_in_a_view_is_one_line_unless_missing_is_drop(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    views, labels = latent_views()
    views[1][[3, 10]] = np.nan
    write_mat_v5(tmp_path / "gaps.mat", views, labels)
    assert main(["run", *TINY, "--set", "task.table.source=gaps.mat"]) == 2
    assert _stderr_lines(capsys) == [
        "pmrl-bench: error: task 'table', view 'v1' (X{2}): row 3 of gaps.mat (0-based) holds NaN; expected numbers "
        "(or drop rows with missing values: --set task.table.missing=drop)"]
    assert _results(tmp_path) == []
    assert main(["run", *TINY, "--set", "task.table.source=gaps.mat", "--set", "task.table.missing=drop"]) == 0
    assert "pmrl-bench: task 'table': dropped 2 of 96 rows of gaps.mat with a missing value (missing=drop)" \
        in _stderr_lines(capsys)
    [result] = _results(tmp_path)
    splits = json.loads(result.read_text())["splits"]
    assert splits["dropped"] == 2 and splits["train"] + splits["val"] + splits["test"] == 94
    page = (tmp_path / "leaderboards" / "table.md").read_text()
    assert (f"- Splits: train {splits['train']}, validation {splits['val']}, test {splits['test']} "
            "(2 rows dropped before splitting)") in page


def test_missing_drop_in_a_table_keeps_naming_rows_as_the_file_numbers_them(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["a,b,y"] + [f"{rng.random():.3f},{rng.random():.3f},{i % 2}" for i in range(30)]
    lines[3] = "0.5,,1"  # data row 2 (line 4): a missing value, dropped
    lines[5] = "0.5,0.25,"  # data row 4 (line 6): a missing label, dropped
    lines[9] = "0.5,inf,0"  # data row 8 (line 10): not missing, but infinite
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as exc:
        create_task("table", source=str(tmp_path / "t.csv"), columns="a,b", label="y", missing="drop").load()
    assert "column 'b': line 10 of" in str(exc.value)  # the file's own line, not the 8th row left after dropping
    lines[9] = "0.5,0.75,0"
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    data = create_task("table", source=str(tmp_path / "t.csv"), columns="a,b", label="y", missing="drop").load()
    assert data.dropped == 2 and len(data.train) + len(data.validation) + len(data.test) == 28


# -- bad input: one line naming the file, the key and what was expected --------------------------------------------


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    views, labels = latent_views()
    text = cell([views[0], "abc"])
    paths = {
        "no key": write_mat_v5(tmp_path / "nokey.mat", views, labels, key="A", label_key="B"),
        "rows differ": write_mat_v5(tmp_path / "rows.mat", [views[0], views[1][:90]], labels),
        "empty view": write_mat_v5(tmp_path / "empty.mat", [views[0], np.zeros((0, 0))], labels),
        "label length": write_mat_v5(tmp_path / "labels.mat", views, labels[:95]),
        "text cell": tmp_path / "text.mat",
        "pickled npz": tmp_path / "objects.npz",
    }
    scipy.io.savemat(paths["text cell"], {"X": text, "Y": labels.reshape(-1, 1)})
    np.savez(paths["pickled npz"], X=np.array([views[0], views[1][:, :3].T], dtype=object), Y=labels)
    return paths


BAD = [
    ("no key", [], "nokey.mat holds no views under X, data, fea, views, features or numbered keys (X1, X2, ...); "
     "its keys: A, B; name the key that holds them with --set task.table.views_key=KEY"),
    ("rows differ", [], "rows.mat, the views do not all have 96 rows, one per label under 'Y' (v0 96 × 6, "
     "v1 90 × 5); every view needs one row per instance"),
    ("empty view", [], "empty.mat, view 'v1' (X{2}) is empty (0 × 0); expected an n × d matrix"),
    ("label length", [], "labels.mat, the labels under 'Y' hold 95 values, but the views have 96 rows"),
    ("text cell", [], "text.mat, view 'v1' (X{2}) holds text ('abc'); expected a numeric n × d matrix"),
    ("pickled npz", [], "objects.npz, key 'X' holds an array of Python objects (pmrl-bench does not unpickle"),
    ("label length", ["task.table.label_key=cls"], "labels.mat has no key 'cls' (label_key); its keys: X, Y"),
    ("label length", ["task.table.views=0,7"], "labels.mat has no view '7' (views); it has 3: v0, v1, v2"),
    ("label length", ["task.table.views_key=Z"], "labels.mat has no key 'Z' (views_key); its keys: X, Y"),
]


@pytest.mark.parametrize(("case", "settings", "expected"), BAD, ids=[f"{c}:{','.join(s)}" for c, s, _ in BAD])
def test_bad_multi_view_input_is_one_line_exit_2_and_nothing_written(tmp_path, monkeypatch, capsys, case,
                                                                     settings, expected):
    monkeypatch.chdir(tmp_path)
    path = _bad_files(tmp_path)[case]
    extra = [arg for setting in settings for arg in ("--set", setting)]
    assert main(["run", *TINY, "--set", f"task.table.source={path.name}", *extra]) == 2
    [line] = _stderr_lines(capsys)
    assert line.startswith("pmrl-bench: error: task 'table'") and expected in line, line
    assert _results(tmp_path) == []


def test_a_sparse_view_too_large_to_densify_is_one_line(tmp_path, monkeypatch):
    views, labels = latent_views()
    path = write_mat_v5(tmp_path / "big.mat", [views[0], sparse(views[1])], labels)
    monkeypatch.setattr(table_multiview, "available_memory", lambda: 1000)
    with pytest.raises(DataError) as exc:
        create_task("table", source=str(path)).load()
    assert "big.mat, view 'v1' (X{2}) is sparse, 96 × 5 with" in str(exc.value)
    assert "dense it needs 1.9 KiB, more than half the 1000 B of memory free" in str(exc.value)


@needs_h5py
def test_a_v73_file_without_views_lists_its_keys(tmp_path):
    views, labels = latent_views(n=30)
    path = write_mat_v73(tmp_path / "v73.mat", views, labels, key="feats", label_key="classes")
    with pytest.raises(DataError, match=r"v73.mat holds no views .*; its keys: classes, feats; name the key"):
        create_task("table", source=str(path)).load()
    data = create_task("table", source=str(path), views_key="feats", label_key="classes").load()
    assert len(data.modalities) == 3 and data.num_classes == 3


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"source": "t.csv", "views": "0,1"}, "views_key, label_key and views apply to multi-view"),
        ({"source": "t.mat", "columns": "a,b", "views": "0,1"}, "not both"),
        ({"source": "t.mat", "missing": "skip"}, "missing must be one of error, drop"),
        ({"source": "t.mat", "label": "y", "label_key": "gt"}, "disagree"),
        ({"source": "t.csv"}, "only multi-view .mat, .npz and .h5 files need none"),
    ],
)
def test_bad_multi_view_parameters_are_usage_errors(params, expected):
    with pytest.raises(UsageError, match=expected):
        create_task("table", **params)


def test_the_worked_example_of_docs_data_md_gives_the_task_it_describes(tmp_path, monkeypatch, capsys):
    import re

    page = (Path(__file__).resolve().parents[2] / "docs" / "data.md").read_text(encoding="utf-8")
    script = re.search(r"```python\n# make_toy.py\n(.*?)```", page, re.S)
    assert script is not None, "docs/data.md lost its worked example"
    monkeypatch.chdir(tmp_path)
    exec(compile(script[1], "make_toy.py", "exec"), {})  # the page's own code writes toy.mat
    data = create_task("table", source="toy.mat").load()
    assert [(m.name, m.shape) for m in data.modalities] == [("v0", (20,)), ("v1", (12,)), ("v2", (6,))]
    assert (len(data.train), len(data.validation), len(data.test), data.num_classes) == (408, 72, 120, 3)
    [line] = _stderr_lines(capsys)
    assert line in page  # the transposition line the page shows
