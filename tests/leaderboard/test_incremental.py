"""Incremental leaderboards: the cache of built pages (hits are byte-identical, a changed input rebuilds only what
depends on it, damaged or foreign entries are never trusted) and a rebuild that rewrites only the changed files."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pmrl_bench.errors import RunFailed
from pmrl_bench.evaluation.per_query import encode_ranks
from pmrl_bench.leaderboard import build as build_module
from pmrl_bench.leaderboard.build import build_leaderboards
from pmrl_bench.leaderboard.cache import CACHE_DIR, PageCache
from pmrl_bench.leaderboard.fingerprints import page_keys
from pmrl_bench.leaderboard.pages import page_stems
from pmrl_bench.leaderboard.rebuild import rebuild_leaderboards
from pmrl_bench.results import ResultStore, RunResult

DIRECTIONS = ("a->b", "b->a")
CURVES = {"singular": {"sigma_mean": [1.5, 0.7], "curves": {"step": [0, 5], "sigma1_share": [0.4, 0.8]}}}


def _result(task: str, objective: str, seed: int, r1: float, tau: float | None = None,
            curves: bool = False) -> RunResult:
    rng = np.random.default_rng(seed)
    ranks = {d: np.where(rng.random(40) < r1, 1, rng.integers(2, 41, size=40)) for d in DIRECTIONS}
    scores = {d: {"R@1": float((r <= 1).mean()), "R@5": float((r <= 5).mean()), "R@10": float((r <= 10).mean()),
                  "MdR": float(np.median(r))} for d, r in ranks.items()}
    metrics = {"retrieval": scores, "per_query_ranks": {"retrieval": {d: encode_ranks(r) for d, r in ranks.items()}}}
    params = {"objective": {"tau": tau} if tau is not None else {}, "task": {}, "encoders": {}, "budget": {"steps": 10}}
    return RunResult(run_id=f"{task}/{objective}/c0-seed{seed}", config_id="c0", task=task, objective=objective,
                     params=params, seed=seed, status="ok", metrics=metrics, stability=CURVES if curves else {},
                     versions={"pmrl_bench": "0.1.0", "torch": "x"}, command="pmrl-bench run")


def _results(tasks: tuple[str, ...] = ("a", "b", "c"), curves: bool = False) -> list[RunResult]:
    return [_result(t, o, s, 0.2 + 0.1 * i + 0.05 * s, curves=curves)
            for t in tasks for i, o in enumerate(("x", "y")) for s in range(2)]


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tasks whose page was built (not taken from a cache), in order."""
    calls: list[str] = []
    real = build_module.task_page

    def counting(task, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003 - the wrapped function's own signature
        calls.append(task)
        return real(task, *args, **kwargs)

    monkeypatch.setattr(build_module, "task_page", counting)
    return calls


def _entries(cache_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in cache_dir.glob("*.json")}


def test_a_cache_hit_gives_byte_identical_pages_and_builds_nothing(tmp_path, built):
    results = _results(("a",), curves=True) + _results(("b",))
    cold = build_leaderboards(results)
    if importlib.util.find_spec("matplotlib") is not None:  # the test extra installs it: PNGs are cached too
        assert sorted(k for k, v in cold.items() if isinstance(v, bytes))[:2] == ["a.scratch.curves.png",
                                                                                 "a.scratch.spectrum.png"]
    built.clear()
    first = build_leaderboards(results, cache=PageCache(tmp_path))
    assert first == cold and built == ["a", "b"]
    built.clear()
    again = build_leaderboards(list(reversed(results)), cache=PageCache(tmp_path))
    assert again == cold and built == []
    # a cache built with plots never serves a build without them (and the other way round): plots are in the key
    assert build_leaderboards(results, plots=False, cache=PageCache(tmp_path)) == {
        k: v for k, v in cold.items() if isinstance(v, str)}
    assert built == ["a", "b"]


def test_a_changed_result_rebuilds_only_its_task(tmp_path, built):
    results = _results()
    build_leaderboards(results, cache=PageCache(tmp_path), plots=False)
    changed = [r if (r.task, r.objective, r.seed) != ("b", "x", 1) else _result("b", "x", 1, 0.9) for r in results]
    built.clear()
    pages = build_leaderboards(changed, cache=PageCache(tmp_path), plots=False)
    assert built == ["b"] and "objective.tau" not in pages["c.md"]  # and the overview, which is not a task page
    built.clear()
    assert pages == build_leaderboards(changed, plots=False)
    # A row label is shared across tasks: a configuration of 'x' with another tau on task a renames x's rows on
    # every task, so those pages are rebuilt too rather than left stale.
    built.clear()
    renamed = build_leaderboards([*changed, _result("a", "x", 5, 0.5, tau=0.5)], cache=PageCache(tmp_path),
                                 plots=False)
    assert built == ["a", "b", "c"]
    assert "objective.tau=None" in renamed["c.md"]


def test_a_corrupt_or_foreign_entry_is_ignored_and_replaced(tmp_path, built):
    results = _results()
    cold = build_leaderboards(results, plots=False)
    build_leaderboards(results, cache=PageCache(tmp_path), plots=False)
    keys, _ = page_keys(results, page_stems({"a", "b", "c"}), (), [], False)
    path = {task: tmp_path / f"{key}.json" for task, key in keys.items()}
    good = path["a"].read_bytes()

    entry = json.loads(good)  # content edited, its hash left as it was
    entry["files"]["a.md"]["content"] = entry["files"]["a.md"]["content"].replace("# Leaderboard", "# Forged")
    path["a"].write_text(json.dumps(entry))
    shutil.copyfile(path["c"], path["b"])  # another key's entry (valid in itself) under b's name
    entry = json.loads(good)  # a's page renamed c's under c's key: the hash covers names too
    entry["files"]["c.md"], entry["key"] = entry["files"].pop("a.md"), keys["c"]
    path["c"].write_text(json.dumps(entry))
    built.clear()
    assert build_leaderboards(results, cache=PageCache(tmp_path), plots=False) == cold
    assert built == ["a", "b", "c"]
    assert path["a"].read_bytes() == good  # the damaged entry was overwritten by a good one

    path["a"].write_bytes(good[: len(good) // 2])  # truncated
    path["b"].write_bytes(b"\x00" * 10)
    built.clear()
    assert build_leaderboards(results, cache=PageCache(tmp_path), plots=False) == cold
    assert built == ["a", "b"]


def _mtimes(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}


def _age(out: Path) -> None:
    """Set every page an hour back, so a rewrite shows whatever the file system's timestamp resolution."""
    for p in out.iterdir():
        if p.is_file():
            os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns - 3_600 * 10**9))


def test_a_rebuild_rewrites_only_the_changed_task_page_and_the_overview(tmp_path):
    store = ResultStore(tmp_path / "results")
    for r in _results():
        store.write(r)
    out = tmp_path / "boards"
    rebuild_leaderboards(store.root, out)
    assert sorted(_mtimes(out)) == ["README.md", "a.md", "b.md", "c.md", "verdicts.json", "verdicts.md"]
    _age(out)
    before = _mtimes(out)
    unchanged = rebuild_leaderboards(store.root, out)  # nothing changed: nothing is written
    assert _mtimes(out) == before
    assert unchanged.rewritten == [] and sorted(p.name for p in unchanged.pages) == sorted(before)
    store.write(_result("b", "y", 2, 0.6))  # a third seed on task b only
    written = rebuild_leaderboards(store.root, out)
    after = _mtimes(out)
    assert sorted(p.name for p in written.rewritten) == ["README.md", "b.md"]
    # no reference objective here: the verdicts are unchanged (an empty family), so not rewritten
    assert {name for name in after if after[name] != before[name]} == {"b.md", "README.md"}
    rebuild_leaderboards(store.root, out, check=True)
    assert len(list((out / CACHE_DIR).glob("*.json"))) == 4  # the entries of this build: the old ones are pruned
    left = out / CACHE_DIR / f".{'0' * 64}.json.k1ll3d00.tmp"  # what a writer killed mid-entry leaves
    left.write_text("{")
    rebuild_leaderboards(store.root, out)
    assert not left.exists() and _mtimes(out) == after


def test_a_cache_that_cannot_be_written_costs_time_not_the_pages(tmp_path):
    store = ResultStore(tmp_path / "results")
    for r in _results(("a",)):
        store.write(r)
    out = tmp_path / "boards"
    out.mkdir()
    (out / CACHE_DIR).write_text("not a directory")
    rebuild_leaderboards(store.root, out)
    assert (out / "a.md").read_text(encoding="utf-8") == build_leaderboards(store.scan()[0])["a.md"]
    rebuild_leaderboards(store.root, out, check=True)


def test_check_neither_needs_nor_trusts_the_cache(tmp_path):
    store = ResultStore(tmp_path / "results")
    for r in _results(("a",)):
        store.write(r)
    out = tmp_path / "boards"
    rebuild_leaderboards(store.root, out)
    shutil.rmtree(out / CACHE_DIR)
    rebuild_leaderboards(store.root, out, check=True)
    assert not (out / CACHE_DIR).exists()  # a check creates no cache
    # An entry that verifies but holds the wrong page (what a clean clone never has): a check computes the truth.
    results, _ = store.scan()
    keys, _ = page_keys(results, {"a": "a"}, (), [], True)
    PageCache.beside(out).put(keys["a"], {"a.md": "forged\n"})
    (out / "a.md").write_text("forged\n", encoding="utf-8")
    with pytest.raises(RunFailed, match="stale: a.md"):
        rebuild_leaderboards(store.root, out, check=True)


@pytest.mark.slow  # spawns git
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_cache_ignores_itself_in_git(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    store = ResultStore(tmp_path / "results")
    for r in _results(("a",)):
        store.write(r)
    rebuild_leaderboards(store.root, tmp_path / "leaderboards")
    assert any((tmp_path / "leaderboards" / CACHE_DIR).glob("*.json"))
    status = subprocess.run(["git", "-C", str(tmp_path), "status", "--porcelain", "--untracked-files=all",
                             "leaderboards"], check=True, capture_output=True, text=True).stdout.splitlines()
    assert sorted(line.split()[-1] for line in status) == ["leaderboards/README.md", "leaderboards/a.md",
                                                           "leaderboards/verdicts.json", "leaderboards/verdicts.md"]


@pytest.mark.slow  # trains a run
def test_a_one_task_run_rewrites_only_its_page_and_the_overview(tmp_path):
    from pmrl_bench.benchmark import run_benchmark
    from pmrl_bench.runner.spec import Budget
    from pmrl_bench.runner.sweep_plan import SweepConfig

    store = ResultStore(tmp_path / "results")
    for r in _results(("other", "more")):
        store.write(r)
    out = tmp_path / "boards"
    rebuild_leaderboards(store.root, out)
    _age(out)
    before = _mtimes(out)
    config = SweepConfig(objectives=["infonce"], tasks=["synthetic"], seeds=1, device="cpu", progress=False,
                         budget=Budget(steps=2, batch_size=16, dim=8),
                         overrides={("task", "synthetic"): {"n_train": "64", "n_test": "32"}})
    done = run_benchmark(config, store.root, out)
    assert done.summary.ok == 1
    after = _mtimes(out)
    changed = {name for name in after if after.get(name) != before.get(name)}
    assert "synthetic.md" in changed and "README.md" in changed
    assert not changed & {"other.md", "more.md"}
    assert all(name.startswith("synthetic.") for name in changed - {"README.md", "verdicts.md", "verdicts.json"})
