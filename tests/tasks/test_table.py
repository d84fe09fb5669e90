"""The user-dataset task: columns to modalities, labels, splits, and one-line errors naming column and row."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from pmrl_bench import create_task
from pmrl_bench.builtins.tasks import cache
from pmrl_bench.cli import main
from pmrl_bench.errors import DataError, UsageError

HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None
needs_pyarrow = pytest.mark.skipif(not HAS_PYARROW, reason="parquet needs pyarrow (optional extra 'data')")


@pytest.fixture(autouse=True, params=["datasets", "pandas"])
def reader(request, tmp_path, monkeypatch):
    """Run every test through datasets (when installed) and through the pandas fallback."""
    monkeypatch.setenv(cache.ENV_CACHE, str(tmp_path / "cache"))
    if request.param == "datasets" and not cache.datasets_installed():
        pytest.skip("datasets not installed (optional extra 'data')")
    if request.param == "pandas":
        monkeypatch.setattr(cache, "datasets_installed", lambda: False)
    return request.param


def three_views(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """Three noisy views of one latent vector, plus a class label from the latent."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 4))
    views = {name: z @ rng.standard_normal((4, d)) + 0.1 * rng.standard_normal((n, d)) for name, d in
             (("a", 6), ("b", 5), ("c", 3))}
    return pd.DataFrame({**{k: list(v) for k, v in views.items()}, "y": np.where(z[:, 0] > 0, "pos", "neg")})


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


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


def test_a_source_with_a_test_split_keeps_it(tmp_path, monkeypatch):
    from pmrl_bench.builtins.tasks import table

    frame = three_views(40)
    monkeypatch.setattr(table, "read_source", lambda source: {"train": frame[:30], "test": frame[30:]})
    data = create_task("table", source="some/hub-set", columns="a,b", label="y").load()
    np.testing.assert_allclose(data.test.inputs["a"], np.stack(frame["a"][30:]), rtol=1e-6)


@pytest.mark.parametrize(
    ("mutate", "columns", "label", "expected"),
    [
        (lambda f: f.at[7, "b"].__setitem__(slice(None), np.nan) or f, "a,b,c", "", "column 'b': row 7 holds a NaN"),
        (lambda f: f.assign(b=[v[:4] if i == 9 else v for i, v in enumerate(f["b"])]), "a,b,c", "",
         "column 'b': row 9 has shape (4,), but row 0 has (5,)"),
        (lambda f: f.assign(c=["oops" if i == 3 else list(v) for i, v in enumerate(f["c"])]), "a,b,c", "",
         "column 'c': row 3 is text"),  # parquet cannot hold this; the case is written as JSON lines
        (lambda f: f.assign(c=[None if i == 5 else v for i, v in enumerate(f["c"])]), "a,b,c", "",
         "column 'c': row 5 is empty"),
        (lambda f: f, "a,b,zz", "", "column 'zz': no such column; available: a, b, c, y"),
        (lambda f: f.assign(y=[None if i == 2 else v for i, v in enumerate(f["y"])]), "a,b", "y",
         "label column 'y': row 2 has no label"),
        (lambda f: f.assign(y=np.linspace(0, 1, len(f))), "a,b", "y", "labels must be integers or strings"),
    ],
)
def test_bad_data_names_the_column_and_the_row(tmp_path, mutate, columns, label, expected, reader):
    if not HAS_PYARROW:
        pytest.skip("parquet needs pyarrow")
    frame = mutate(three_views(20))
    if "row 3 is text" in expected:
        path = tmp_path / "bad.jsonl"
        frame.assign(**{c: frame[c].map(lambda v: v if isinstance(v, str) else list(v)) for c in "abc"}).to_json(
            path, orient="records", lines=True)
    else:
        path = tmp_path / "bad.parquet"
        frame.to_parquet(path)
    with pytest.raises(DataError) as exc:
        create_task("table", source=str(path), columns=columns, label=label, test_size=0.5).load()
    assert expected in _one_line(exc)


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


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no file"):
        create_task("table", source=str(tmp_path / "nope.parquet"), columns="a,b").load()


@needs_pyarrow
def test_readme_command_runs_a_parquet_dataset_end_to_end(tmp_path, monkeypatch, reader):
    """The README's user-dataset command, at a tiny budget (once: with datasets when it is installed)."""
    if reader == "pandas" and cache.datasets_installed():
        pytest.skip("runs once, through datasets")
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
