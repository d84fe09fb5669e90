"""Task pages: per-seed spread and run marks, the step-0 reference rows (never ranked), and the linear CCA baseline
file (shown where its data fingerprint matches, listed as skipped where not); ``show`` prints the same."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pmrl_bench.baselines.record import BaselineResult, baseline_path, read_baseline, scan_baselines, write_baseline
from pmrl_bench.components import Modality, Split, TaskData
from pmrl_bench.leaderboard import build_leaderboards
from pmrl_bench.leaderboard.rebuild import rebuild_leaderboards
from pmrl_bench.report.terminal import main_tables, summarize, summary_json
from pmrl_bench.results import ResultStore, RunResult

DIRECTIONS = ("a->b", "b->a")
FINGERPRINT = "0123456789abcdef"


def _scores(r1: float) -> dict[str, float]:
    return {"R@1": r1, "R@5": min(1.0, r1 + 0.2), "R@10": min(1.0, r1 + 0.3), "MdR": 3.0 - r1}


def _result(objective: str, seed: int, r1: float, protocol: str = "scratch", inert: bool = False,
            collapsed: bool = False) -> RunResult:
    """A finished run: R@1 ``r1`` in both directions, at step 0 a fixed lower score and fused probes only."""
    loss, grad = ([1e-9, 1e-9], [1e-8, 1e-8]) if inert else ([2.0, 1.0], [1.0, 0.5])
    ranks = {"a": 1.5 if collapsed else 30.0, "b": 30.0}
    metrics = {"retrieval": {d: _scores(r1) for d in DIRECTIONS},
               "classification": {"linear:fused": r1, "linear:a": r1 / 2}}
    at_init = {"retrieval": {d: _scores(0.05 + seed / 100) for d in DIRECTIONS},
               "classification": {"linear:fused": 0.3}}
    return RunResult(
        run_id=f"t/{objective}/c-{protocol}-seed{seed}", config_id=f"c{len(protocol)}", task="t", objective=objective,
        params={"objective": {}, "task": {}, "encoders": {}, "budget": {"steps": 10}}, seed=seed, status="ok",
        metrics=metrics, metrics_at_init=at_init, protocol=protocol, data_fingerprint=FINGERPRINT,
        splits={"train": 50, "val": 10, "test": 40}, versions={"pmrl_bench": "0.1.0"}, command="pmrl-bench run",
        stability={"optimisation": {"curves": {"step": [5, 10], "loss": loss, "grad_norm": grad}},
                   "representation": {"effective_rank": {"all": 30.0, **ranks}}},
    )


def _results() -> list[RunResult]:
    return ([_result("alpha", s, r1) for s, r1 in enumerate((0.30, 0.40, 0.50))]
            + [_result("beta", s, 0.2, inert=True, collapsed=s == 0) for s in range(3)])


def _baseline(fingerprint: str = FINGERPRINT, task: str = "t") -> BaselineResult:
    return BaselineResult(baseline="cca", label="linear CCA (no training)", task=task, task_params={},
                          data_fingerprint=fingerprint, splits={"train": 50, "val": 10, "test": 40},
                          versions={"pmrl_bench": "0.1.0"},
                          retrieval={"a->b": _scores(0.6), "b->a": _scores(0.4)}, settings={"components": {"a,b": 2}})


def _rows(page: str, label: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("|")[1:-1]] for line in page.splitlines()
            if line.startswith("|") and f"`{label}" in line]


def test_retrieval_table_shows_per_seed_spread_and_marks():
    page = build_leaderboards(_results(), plots=False)["t.md"]
    alpha, beta = _rows(page, "alpha")[0], _rows(page, "beta")[0]
    assert alpha[-2:] == ["30.0..50.0", "none"]
    assert beta[-2:] == ["20.0..20.0", "inert 3/3; collapsed 1/3 (a)"]
    assert "| R@1 min..max" in page and "`inert`" in page  # the header and the legend


def test_step0_row_is_shown_unranked_under_scratch_and_warm():
    results = _results() + [_result("alpha", s, 0.6, protocol="warm:infonce:300") for s in range(3)]
    page = build_leaderboards(results, plots=False)["t.md"]
    scratch = _rows(page, "step 0 (random encoders)")
    warm = _rows(page, "step 0 (init stage: infonce:300)")
    assert scratch and warm
    assert scratch[0][0] == "ref" and warm[0][0] == "ref"  # never ranked
    assert scratch[0][3].startswith("6.0 ± ") and not scratch[0][3].startswith("**")  # mean of 5, 6 and 7 %
    assert scratch[0][-2:] == ["5.0..7.0", "–"]
    # ranks among the configurations alone: the step 0 row, far below, takes no place in them
    assert [r[0] for r in _rows(page, "alpha [scratch")][:1] == ["1"]


def test_classification_step0_row_has_fused_probes_and_dashes_with_the_reason():
    page = build_leaderboards(_results(), plots=False)["t.md"]
    section = page.split("Classification", 1)[1]
    row = _rows(section, "step 0 (random encoders)")[0]
    assert row[2:4] == ["–", "30.0 ± 0.0 [30.0, 30.0]"]  # linear:a lacking at step 0, linear:fused present
    assert "Read each probe against the `step 0 (random encoders)` row" in section
    assert "Step 0 shows – for `linear:a`" in section


def test_cca_row_shown_when_the_fingerprint_matches_and_skipped_when_not():
    page = build_leaderboards(_results(), plots=False, baselines=[("_baselines/t/cca.json", _baseline())])["t.md"]
    row = _rows(page, "linear CCA (no training)")[0]
    assert row[:7] == ["ref", "`linear CCA (no training)`", "no training", "50.0", "70.0", "80.0", "2.50"]
    per_direction = _rows(page.split("R@1 per direction", 1)[1], "linear CCA (no training)")[0]
    assert per_direction[2:] == ["60.0", "40.0", "50.0"]

    pages = build_leaderboards(_results(), plots=False,
                               baselines=[("_baselines/t/cca.json", _baseline("ffffffffffffffff"))])
    assert "linear CCA" not in pages["t.md"]
    assert "`_baselines/t/cca.json`: baseline data fingerprint ffffffffffffffff differs" in pages["README.md"]


def test_baseline_file_round_trip_and_bad_files_are_one_line_problems(tmp_path):
    path = write_baseline(tmp_path, _baseline())
    assert path == baseline_path(tmp_path, "t", "cca") == tmp_path / "_baselines" / "t" / "cca.json"
    assert read_baseline(path) == _baseline()
    (path.parent / "broken.json").write_text("{not json")
    raw = json.loads(path.read_text())
    raw["retrieval"]["a->b"].pop("MdR")
    (path.parent / "partial.json").write_text(json.dumps(raw))
    found, problems = scan_baselines(tmp_path)
    assert [p for p, _ in found] == ["_baselines/t/cca.json"]
    reasons = dict(problems)
    assert reasons["_baselines/t/broken.json"].startswith("not JSON")
    assert "lacks MdR" in reasons["_baselines/t/partial.json"]
    assert all("\n" not in why for why in reasons.values())


def test_result_store_and_rebuild_read_baselines_apart_from_results(tmp_path, capsys):
    store = ResultStore(tmp_path / "results")
    for r in _results():
        store.write(r)
    write_baseline(store.root, _baseline())
    (store.root / "_baselines" / "t" / "bad.json").write_text("[]")
    results, problems = store.scan()
    assert len(results) == 6 and problems == []  # _baselines is not a task
    rebuild_leaderboards(store.root, tmp_path / "out")
    assert "linear CCA (no training)" in (tmp_path / "out" / "t.md").read_text()
    assert "`_baselines/t/bad.json`" in (tmp_path / "out" / "README.md").read_text()
    err = capsys.readouterr().err
    assert "bad.json" in err and "Traceback" not in err


def test_show_gives_spread_and_marks_per_configuration_and_per_run():
    tasks = summarize(_results(), full=True)
    text = main_tables(tasks)
    assert "R@1 min..max" in text and "inert 3/3; collapsed 1/3 (a)" in text and "30.0..50.0" in text
    assert "loss never moved" in text and "collapsed a: effective rank 1.50" in text  # per run, with the reason
    beta = next(c for c in summary_json(tasks)["t"]["configurations"] if c["objective"] == "beta")
    assert beta["seed_R@1"] == {"min": pytest.approx(0.2), "max": pytest.approx(0.2)}
    assert [run["inert"] for run in beta["runs"]] == [True, True, True]
    assert beta["runs"][0]["collapsed"] == ["a"] and beta["runs"][1]["collapsed"] == []


def test_cca_baseline_file_records_the_runner_data_fingerprint(tmp_path):
    from pmrl_bench.baselines.cca import baseline_result, cca_retrieval
    from pmrl_bench.runner.fingerprint import data_fingerprint

    rng = np.random.default_rng(0)

    def split(n: int) -> Split:
        shared = rng.normal(size=(n, 3))
        return Split({"a": shared @ rng.normal(size=(3, 6)) + 0.1 * rng.normal(size=(n, 6)),
                      "b": shared @ rng.normal(size=(3, 5)) + 0.1 * rng.normal(size=(n, 5))}, None)

    data = TaskData([Modality("a", "vector", (6,)), Modality("b", "vector", (5,))], split(80), split(40),
                    validation=split(20))
    result = cca_retrieval(data)
    record = baseline_result("t", {"n": 1}, data, result, "python -m pmrl_bench.baselines.cca --task t")
    assert record.data_fingerprint == data_fingerprint(data)
    assert set(record.retrieval) == {"a->b", "b->a"} and record.settings["components"]["a,b"] in (2, 4)
    assert read_baseline(write_baseline(tmp_path, record)) == record
