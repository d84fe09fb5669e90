"""Result files are read only through the versioned schema. Files from earlier versions keep loading
(fixtures/valid, MTEB's historic-results idea); anything else is reported by path and skipped, never used."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pmrl_bench.cli import main
from pmrl_bench.leaderboard import build_leaderboards
from pmrl_bench.results import InvalidResult, ResultStore, RunResult

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
    "unknown-status.json": "status: Input should be 'ok', 'diverged' or 'failed'",
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
