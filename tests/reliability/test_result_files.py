"""Result files are read only through the versioned schema. Files from earlier versions keep loading
(fixtures/valid, MTEB's historic-results idea); anything else is reported by path and skipped, never used."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pmrl_bench.cli import main
from pmrl_bench.leaderboard import build_leaderboards
from pmrl_bench.results import InvalidResult, ResultStore, RunResult
from pmrl_bench.results import store as store_module
from pmrl_bench.results.store import MAX_RESULT_BYTES

FIXTURES = Path(__file__).with_name("fixtures")
VALID = sorted((FIXTURES / "valid").glob("*.json"))
INVALID_REASONS = {
    "bad-direction.json": "is not '<query>-><gallery>'",
    "binary.json": "unreadable",
    "empty.json": "unreadable",
    "future-schema.json": "schema_version 3 is newer than this pmrl-bench reads (2); upgrade pmrl-bench",
    "missing-metric.json": "lacks R@5",
    "missing-status.json": "status: Field required",
    "nan-literal.json": "NaN is not valid JSON",
    "negative-seed.json": "seed must be >= 0",
    "no-schema-version.json": "schema_version None is not a known result schema",
    "not-an-object.json": "a JSON list, expected an object",
    "task-escapes.json": "not a path-safe name",
    "truncated.json": "unreadable",
    "unknown-key.json": "notes: Extra inputs are not permitted",
    "unknown-status.json": "status: Input should be 'ok', 'diverged', 'failed' or 'not_applicable'",
    # Schema-valid before the leaderboard's needs were part of the schema; each crashed `pmrl-bench leaderboard`.
    "budget-list.json": "params.budget is a list, expected an object",
    "plugins-string.json": "versions.plugins is a string, expected {distribution: version}",
    "view-score-text.json": "retrieval_multimodal direction 'm0+m1->m2': R@1 is 'high', expected a number",
    "ranks-unequal.json": "directions have unequal numbers of queries (127, 128)",
    "ranks-overflow.json": "per_query_ranks.retrieval.m0->m1 is not space-separated integer ranks",
    "curves-shape.json": "stability.singular.curves.step[0] is a list, expected a number",
    "curve-text.json": "stability.optimisation.curves.grad_norm is a string, expected a list of numbers",
    "spectrum-list.json": "stability.representation.spectrum is a list, expected {name: [numbers]}",
    "stability-huge-int.json": "stability.optimisation.loss_spikes: an integer of 401 digits is beyond any float",
    "metric-overflow.json": "metrics.retrieval.m0->m1.R@1: inf is not a finite number",
    "nested-deep.json": "is nested more than 32 levels deep",
}


def test_every_invalid_fixture_has_an_expected_reason():
    assert sorted(p.name for p in (FIXTURES / "invalid").glob("*.json")) == sorted(INVALID_REASONS)
    assert len(VALID) >= 4


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_historic_result_files_still_load_and_render(path):
    assert json.loads(path.read_text())["schema_version"] == 1
    result = ResultStore.read(path)  # upgraded on read: a version 1 run trained from scratch and kept its last state
    assert result.schema_version == 2 and result.status in ("ok", "diverged", "failed")
    assert result.protocol == "scratch" and result.selection.rule == "last"
    pages = build_leaderboards([result])  # an old file must not break today's leaderboard code
    assert pages[f"{result.task}.md"].startswith(f"# Leaderboard: `{result.task}`")


def test_historic_files_together_make_one_leaderboard():
    results = [ResultStore.read(p) for p in VALID]
    page = build_leaderboards(results)["synthetic.md"]
    assert "1 diverged" in page and "1 failed" in page


@pytest.mark.parametrize("name", sorted(INVALID_REASONS))
def test_invalid_result_files_are_rejected_with_a_reason(name):
    with pytest.raises(InvalidResult) as info:
        ResultStore.read(FIXTURES / "invalid" / name)
    assert INVALID_REASONS[name] in info.value.reason
    assert str(FIXTURES / "invalid" / name) in str(info.value)


def _place(store: ResultStore, source: Path, name: str | None = None) -> Path:
    """Copy ``source`` where a result with its content belongs (or under ``name`` in a plausible place)."""
    if name is None:
        result = ResultStore.read(source)
        target = store.path_for(result.task, result.objective, result.config_id, result.seed)
    else:
        target = store.root / "synthetic" / "infonce" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def test_leaderboard_skips_every_bad_file_naming_it_and_never_crashes(tmp_path, capsys):
    store = ResultStore(tmp_path / "results")
    for path in VALID:
        _place(store, path)
    bad = {name: _place(store, FIXTURES / "invalid" / name, name) for name in INVALID_REASONS}
    unreadable = store.root / "synthetic" / "pmrl" / "a-directory.json"
    unreadable.mkdir(parents=True)  # a directory where a file should be
    dangling = store.root / "synthetic" / "pmrl" / "dangling.json"
    dangling.symlink_to(tmp_path / "nowhere.json")

    assert main(["leaderboard", str(store.root), "--out", str(tmp_path / "boards")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(bad) + 2
    for name, path in bad.items():
        assert any(str(path) in line and INVALID_REASONS[name] in line for line in err), name
    assert any(str(unreadable) in line for line in err) and any(str(dangling) in line for line in err)
    overview = (tmp_path / "boards" / "README.md").read_text()
    assert "Skipped result files" in overview and "`synthetic/infonce/truncated.json`" in overview
    assert "1 diverged" in (tmp_path / "boards" / "synthetic.md").read_text()
    assert main(["leaderboard", str(store.root), "--out", str(tmp_path / "boards"), "--check"]) == 0


def test_a_copied_or_renamed_result_is_reported_not_counted_twice(tmp_path):
    store = ResultStore(tmp_path / "results")
    original = _place(store, VALID[-1])
    copy = original.with_name("000000000000-seed0.json")
    shutil.copyfile(original, copy)
    results, problems = store.scan()
    assert len(results) == 1
    assert [p.path for p in problems] == [copy] and "misplaced result" in problems[0].reason


def test_a_run_whose_stored_result_is_invalid_is_rerun(tmp_path):
    """``existing`` treats an invalid file as absent, so the next sweep replaces it with a valid one."""
    store = ResultStore(tmp_path / "results")
    path = _place(store, VALID[-1])
    result = ResultStore.read(path)
    path.write_text(path.read_text()[:100])
    assert store.existing(result.task, result.objective, result.config_id, result.seed) is None
    store.write(result)
    assert store.existing(result.task, result.objective, result.config_id, result.seed) == result


def test_written_files_are_strict_json_and_round_trip(tmp_path):
    store = ResultStore(tmp_path / "results")
    result = ResultStore.read(VALID[0]).model_copy(update={"stability": {"x": float("nan"), "y": [1.0, float("inf")]}})
    path = store.write(result)
    text = path.read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} written"))
    assert ResultStore.read(path).stability == {"x": None, "y": [1.0, None]}
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind
    assert isinstance(ResultStore.read(path), RunResult)


@pytest.mark.slow
def test_only_bounded_regular_files_inside_the_tree_are_read(tmp_path):
    """A FIFO, a link to /dev/zero, a 3 GB (sparse) file and a link out of the tree are listed, never read:
    before, the FIFO hung the leaderboard forever and the others ended in a MemoryError traceback. A child
    process with a timeout, so a regression fails instead of hanging the suite."""
    store = ResultStore(tmp_path / "results")
    good = _place(store, VALID[-1])
    folder = store.root / "synthetic" / "infonce"
    os.mkfifo(folder / "fifo.json")
    (folder / "zeros.json").symlink_to("/dev/zero")
    with open(folder / "huge.json", "wb") as handle:
        handle.truncate(3 * 2**30)  # sparse: no disk space used
    outside = tmp_path / "elsewhere" / good.name
    outside.parent.mkdir()
    shutil.copyfile(good, outside)
    (folder / "outside.json").symlink_to(outside)

    boards = tmp_path / "boards"
    proc = subprocess.run([sys.executable, "-m", "pmrl_bench", "leaderboard", str(store.root), "--out", str(boards)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    expected = {"fifo.json": "a FIFO, not a regular file", "zeros.json": "outside the results directory",
                "huge.json": f"larger than {MAX_RESULT_BYTES} bytes", "outside.json": "outside the results directory"}
    assert len(lines) == len(expected), lines
    for name, reason in expected.items():
        assert any(name in line and reason in line for line in lines), (name, lines)
    overview = (boards / "README.md").read_text()
    assert all(f"`synthetic/infonce/{name}`" in overview for name in expected)
    assert "| [synthetic](synthetic.md#protocol-scratch) | 1/1 " in overview  # the valid result is intact and counted


def test_a_result_at_the_size_limit_is_read_and_one_byte_more_is_not(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    text = VALID[0].read_text()
    path.write_text(text)
    monkeypatch.setattr(store_module, "MAX_RESULT_BYTES", len(text.encode()))
    assert ResultStore.read(path).task == "synthetic"
    monkeypatch.setattr(store_module, "MAX_RESULT_BYTES", len(text.encode()) - 1)
    with pytest.raises(InvalidResult, match="larger than"):
        ResultStore.read(path)


def test_a_result_too_large_to_read_back_is_not_written(tmp_path, monkeypatch):
    result = ResultStore.read(VALID[0])
    monkeypatch.setattr(store_module, "MAX_RESULT_BYTES", 1000)
    with pytest.raises(ValueError, match="result files are at most 1000 bytes"):
        ResultStore(tmp_path).write(result)
    assert not any(tmp_path.rglob("*.json")) and not any(tmp_path.rglob("*.tmp"))


def test_a_non_finite_parameter_is_written_as_text_not_null(tmp_path):
    """A parameter that declared it takes inf must still say so in the result (null would hide what ran)."""
    result = ResultStore.read(VALID[0])
    params = {**result.params, "objective": {"clip": float("inf"), "floor": float("-inf"), "t": float("nan"), "k": 1.5}}
    path = ResultStore(tmp_path).write(result.model_copy(update={"params": params}))
    stored = json.loads(path.read_text())["params"]["objective"]
    assert stored == {"clip": "inf", "floor": "-inf", "t": "nan", "k": 1.5}
    assert float(stored["clip"]) == float("inf")
    assert ResultStore.read(path).params["objective"]["clip"] == "inf"


def test_non_finite_metrics_are_never_stored(tmp_path):
    """Metrics and stability may hand over NaN: stored as null, and a null retrieval score is not a valid result,
    so writing refuses (the runner then records the run as failed) instead of storing what cannot be ranked."""
    result = ResultStore.read(FIXTURES / "valid" / "v1-ok.json")
    assert result.metrics.retrieval
    retrieval = {d: {**s, "R@1": float("nan")} for d, s in result.metrics.retrieval.items()}
    bad = result.model_copy(update={"metrics": result.metrics.model_copy(update={"retrieval": retrieval})})
    with pytest.raises(ValueError, match="R@1"):
        ResultStore(tmp_path).write(bad)
    assert not any(tmp_path.rglob("*.json"))
