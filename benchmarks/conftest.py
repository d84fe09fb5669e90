"""Shared benchmark reporting: print side-by-side ratios at the end of a benchmark session.

Convention: in a benchmark group, the test that sets ``benchmark.extra_info["role"] = "baseline"`` is the
reference; every other test of the group is reported as ``time / baseline time`` (median of rounds) and its
inverse, the speed-up. Groups without a baseline are not summarised. The raw timings are what
``--benchmark-json`` / ``--benchmark-autosave`` store; the ratios can be recomputed from them.
"""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import torch


@pytest.fixture(autouse=True)
def threads() -> Iterator[int]:
    """Intra-op threads for every benchmark and its baseline alike, so ratios stay fair: ``PMRL_BENCH_THREADS``,
    default 1 (idle worker threads spinning on a shared machine add noise, not signal)."""
    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("PMRL_BENCH_THREADS", "1")))
    yield torch.get_num_threads()
    torch.set_num_threads(before)


def ratio_rows(benchmarks: list[Any]) -> list[tuple[str, str, float, float, float]]:
    """``(group, name, median seconds, time ratio, speed-up)`` for each non-baseline benchmark of a group."""
    groups: dict[str, list[Any]] = defaultdict(list)
    for bench in benchmarks:
        if bench.stats is not None and bench.stats.rounds:
            groups[bench.group or ""].append(bench)
    rows = []
    for group, members in groups.items():
        baselines = [b for b in members if b.extra_info.get("role") == "baseline"]
        if len(baselines) != 1:
            continue
        base = baselines[0].stats.median
        for bench in members:
            if bench is not baselines[0]:
                median = bench.stats.median
                rows.append((group, bench.name, median, median / base, base / median))
    return rows


def pytest_terminal_summary(terminalreporter, config) -> None:
    session = getattr(config, "_benchmarksession", None)
    benchmarks = list(getattr(session, "benchmarks", []) or [])
    rows = ratio_rows(benchmarks)
    if rows:
        terminalreporter.section("benchmark ratios (median time / baseline median time)")
    for group, name, median, ratio, speedup in rows:
        terminalreporter.write_line(
            f"{group}: {name}: {median * 1e3:.2f} ms = {ratio:.3g} x baseline time ({speedup:.3g}x speed-up)"
        )
    for bench in benchmarks:  # shares a benchmark measured inside each of its own rounds
        for label, shares in (bench.extra_info.get("shares") or {}).items():
            terminalreporter.write_line(
                f"{bench.group}: {bench.name}: {label}: median {statistics.median(shares):.2%} of the round "
                f"(min {min(shares):.2%}, max {max(shares):.2%}, {len(shares)} rounds)"
            )
