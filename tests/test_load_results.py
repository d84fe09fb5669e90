"""``pmrl_bench.load_results``: result files as a pandas DataFrame (wide: one row per file; long: one row per
retrieval direction), checked against the schema, the committed result files and the committed leaderboard pages."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pmrl_bench
from pmrl_bench.errors import UsageError
from pmrl_bench.results import RunResult
from pmrl_bench.analysis import ID_COLUMNS, LONG_COLUMNS
from pmrl_bench.results.schema import RETRIEVAL_KEYS, is_retrieval_view

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


def _files(root: Path) -> list[Path]:
    """The result files of a results tree as the store finds them: no hidden names, no ``_`` directories."""
    return sorted(p for p in root.rglob("*.json")
                  if not any(part.startswith((".", "_")) for part in p.relative_to(root).parts))


@pytest.fixture(scope="module")
def raw() -> dict[str, dict[str, Any]]:
    """The committed result files as plain JSON, by path relative to ``results/``."""
    files = _files(RESULTS)
    if not files:
        pytest.skip("no committed results")
    return {p.relative_to(RESULTS).as_posix(): json.loads(p.read_text()) for p in files}


@pytest.fixture(scope="module")
def wide(raw: dict[str, dict[str, Any]]) -> pd.DataFrame:
    return pmrl_bench.load_results(RESULTS)


@pytest.fixture(scope="module")
def long(raw: dict[str, dict[str, Any]]) -> pd.DataFrame:
    return pmrl_bench.load_results(RESULTS, long=True)


def test_one_row_per_committed_result_file(wide, raw):
    assert len(wide) == len(raw) > 0
    assert sorted(wide["path"]) == sorted(raw)
    assert list(wide.columns[:len(ID_COLUMNS)]) == list(ID_COLUMNS)
    assert wide["tuned"].dtype == bool and wide["seed"].dtype == "int64"
    ordered = wide.sort_values(["task", "label", "seed", "config_id"], kind="stable")
    assert list(ordered.index) == list(wide.index)  # rows in the order of the pages


def _scalar(schema: dict[str, Any]) -> bool:
    options = schema.get("anyOf", [schema])
    return all("$ref" not in o and o.get("type") not in ("object", "array") for o in options)


def test_every_scalar_field_of_the_schema_is_a_column(wide):
    properties = RunResult.model_json_schema()["properties"]
    scalars = [name for name, schema in properties.items() if _scalar(schema)]
    assert {"run_id", "seed", "status", "device", "duration_s", "created", "data_fingerprint"} <= set(scalars)
    assert set(scalars) <= set(wide.columns)
    for block in ("selection", "splits"):  # small nested models: one column per field
        fields = RunResult.model_fields[block].annotation
        model = next(a for a in getattr(fields, "__args__", (fields,)) if a is not type(None))
        assert {f"{block}/{f}" for f in model.model_fields} <= set(wide.columns)
    for name in ("pmrl_bench", "torch", "python"):
        assert f"versions/{name}" in wide.columns
    assert wide["created"].dtype.kind == "M"


def test_metric_columns_are_what_the_files_hold(wide, raw):
    expected: set[str] = set()
    rows = wide.set_index("path")
    for path, content in raw.items():
        row = rows.loc[path]
        metrics = content["metrics"]
        for direction, scores in metrics.get("retrieval", {}).items():
            for key, value in scores.items():
                expected.add(f"{key}[{direction}]")
                assert row[f"{key}[{direction}]"] == value
        if metrics.get("retrieval"):
            r1 = [s["R@1"] for s in metrics["retrieval"].values()]
            assert row["mean_R@1"] == pytest.approx(sum(r1) / len(r1))
        for probe, value in (metrics.get("classification") or {}).items():
            expected.add(f"classification/{probe}")
            assert row[f"classification/{probe}"] == value
        for direction, scores in ((content.get("metrics_at_init") or {}).get("retrieval") or {}).items():
            assert row[f"at_init/R@1[{direction}]"] == scores["R@1"]
        for monitor, block in content.get("stability", {}).items():
            for key, value in block.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    assert row[f"stability/{monitor}/{key}"] == value
        for key, value in content.get("cost", {}).items():
            if not isinstance(value, dict):
                assert row[f"cost/{key}"] == value
        assert row["duration_s"] == content["duration_s"] and row["device"] == content["device"]
    main = {c for c in wide.columns if "[" in c and "/" not in c} | {
        c for c in wide.columns if c.startswith("classification/")}
    assert main == expected


def test_long_form_has_one_row_per_direction(long, raw):
    directions = sum(len(view) for content in raw.values() for name, view in content["metrics"].items()
                     if name != "per_query_ranks" and is_retrieval_view(view))
    assert len(long) == directions
    assert list(long.columns) == list(LONG_COLUMNS)
    main = long[long["view"] == "retrieval"]
    assert len(main) == sum(len(c["metrics"].get("retrieval", {})) for c in raw.values())
    assert (main["query"] + "->" + main["gallery"] == main["direction"]).all()
    assert set(RETRIEVAL_KEYS) <= set(long.columns)


def test_pivot_of_mean_r1_by_objective_and_protocol(wide, long, raw):
    ok = wide[wide["status"] == "ok"]
    table = ok.pivot_table(index=["task", "objective"], columns="protocol", values="mean_R@1",
                           aggfunc=["mean", "std"])
    assert {"mean", "std"} == set(table.columns.get_level_values(0))
    task, objective = table.index[0]
    cell = table.loc[(task, objective), ("mean", "scratch")]
    by_hand = [sum(s["R@1"] for s in c["metrics"]["retrieval"].values()) / len(c["metrics"]["retrieval"])
               for c in raw.values() if (c["task"], c["objective"], c["protocol"], c["status"])
               == (task, objective, "scratch", "ok")]
    assert cell == pytest.approx(sum(by_hand) / len(by_hand))
    # the long form gives the same means (every run of the committed results has the same directions per task)
    per_run = long[long["view"] == "retrieval"].groupby("path")["R@1"].mean()
    assert per_run.to_dict() == pytest.approx(ok.set_index("path")["mean_R@1"].to_dict())


def test_labels_and_protocols_are_those_of_the_pages(wide):
    for task, rows in wide.groupby("task"):
        page = ROOT / "leaderboards" / f"{task}.md"
        if not page.exists():
            pytest.skip(f"no committed leaderboard page for {task}")
        text = page.read_text(encoding="utf-8")
        for label in rows["label"].unique():
            assert f"`{label}`" in text
        for protocol in rows["protocol"].unique():
            assert f"## Protocol `{protocol}`" in text
    assert wide["tuned"].any() and not wide["tuned"].all()
    assert (wide["label"].str.contains("tuned:") == wide["tuned"]).all()


def _copy(tmp_path: Path, *relative: str) -> Path:
    for rel in relative:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(RESULTS / rel, tmp_path / rel)
    return tmp_path


def test_a_bad_file_is_a_one_line_error_naming_it(raw, tmp_path):
    good = next(iter(raw))
    root = _copy(tmp_path, good)
    bad = root / Path(good).parent / "broken-seed0.json"
    bad.write_text('{"schema_version": 2,\n "seed": ')
    with pytest.raises(UsageError) as caught:
        pmrl_bench.load_results(root)
    message = str(caught.value)
    assert "\n" not in message and str(bad) in message and "unreadable" in message
    with pytest.warns(UserWarning, match="broken-seed0.json"):
        assert len(pmrl_bench.load_results(root, skip_invalid=True)) == 1


def test_a_failed_run_has_a_row_but_no_directions(raw, tmp_path):
    good = next(iter(raw))
    content = dict(raw[good], status="failed", metrics={}, metrics_at_init=None, error="boom")
    (tmp_path / good).parent.mkdir(parents=True)
    (tmp_path / good).write_text(json.dumps(content))
    frame = pmrl_bench.load_results(tmp_path)
    assert frame.loc[0, "status"] == "failed" and frame.loc[0, "error"] == "boom"
    assert "mean_R@1" not in frame.columns
    assert pmrl_bench.load_results(tmp_path, long=True).empty


def test_missing_empty_or_wrong_directory_is_a_clear_error(raw, tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        pmrl_bench.load_results(tmp_path / "nowhere")
    with pytest.raises(UsageError, match="no result files"):
        pmrl_bench.load_results(tmp_path)
    good = next(iter(raw))
    _copy(tmp_path, good)
    with pytest.raises(UsageError, match="misplaced result.*results directory"):
        pmrl_bench.load_results(tmp_path / Path(good).parts[0])  # a task's directory, not the results directory
    with pytest.raises(UsageError, match="not a results directory"):
        pmrl_bench.load_results(tmp_path / good)


def test_importing_the_package_does_not_import_pandas():
    code = "import sys, pmrl_bench; assert 'pandas' not in sys.modules and 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
