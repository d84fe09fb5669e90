"""Rebuilding the leaderboards of a results directory: cold, and again with nothing changed (incremental).

Run (opt-in; the test suite skips benchmarks):

    python -m pytest benchmarks/test_leaderboard_rebuild.py --benchmark-only --benchmark-timer=time.process_time

Group ``rebuild``: the baseline is a cold rebuild (``rebuild_leaderboards`` into an empty directory: no pages, no
cache), what every ``run`` paid before rebuilds were incremental; the other row rebuilds the same directory again
with nothing changed, so every page and plot comes from the cache and no file is rewritten (checked after timing).
Both read and hash the result files alike. The results are the committed ``results/`` (243 result files and 36
tuning records, three tasks), or the directory named by ``PMRL_BENCH_RESULTS``. Target: the unchanged rebuild at
least 5x faster than the cold one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pmrl_bench.leaderboard.rebuild import rebuild_leaderboards

RESULTS = Path(os.environ.get("PMRL_BENCH_RESULTS", Path(__file__).resolve().parents[1] / "results"))


def _files(out: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir() if p.is_file()}


@pytest.mark.parametrize("state", ["cold", "nothing changed"])
def test_rebuild(benchmark, tmp_path, state):
    if not RESULTS.is_dir():
        pytest.skip(f"no results directory at {RESULTS}")
    out = tmp_path / "leaderboards"
    benchmark.group = "rebuild"
    if state == "cold":
        benchmark.extra_info["role"] = "baseline"

        def empty() -> None:
            shutil.rmtree(out, ignore_errors=True)

        benchmark.pedantic(rebuild_leaderboards, args=(RESULTS, out), setup=empty, rounds=1, iterations=1)
        return
    rebuild_leaderboards(RESULTS, out)  # untimed: the pages and the cache a previous rebuild left
    before = _files(out)
    benchmark.pedantic(rebuild_leaderboards, args=(RESULTS, out), rounds=3, iterations=1)
    assert _files(out) == before  # the same bytes, and not one file rewritten
