"""Strings from result files cannot change a page's structure, page names cannot collide, and the bootstrap's
memory stays bounded whatever the number of queries a result holds.

Structure is checked by parsing the markdown (markdown-it-py, CommonMark plus tables) and comparing with the
page built from the same results with harmless strings in place of the hostile ones.
"""

from __future__ import annotations

import re
import tracemalloc

import numpy as np
import pytest
from markdown_it import MarkdownIt
from reliability_helpers import run_args

from pmrl_bench.cli import main
from pmrl_bench.evaluation.per_query import encode_ranks
from pmrl_bench.leaderboard import build_leaderboards, stats
from pmrl_bench.leaderboard.build import Skipped
from pmrl_bench.results import ResultStore, RunResult

HOSTILE = "a|b\n# Heading\n<script>alert(1)</script> `tick` **bold** [link](x) ![i](y) $x$ \\| ~~s~~\r\n- item"
MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def _result(text: str, seed: int, task: str = "t", value: str = "v1", objective: str = "obj",
            config: str | None = None) -> RunResult:
    """One result whose every free-text field the leaderboard shows holds ``text``."""
    scores = {"R@1": 0.4 + 0.1 * seed, "R@5": 0.7, "R@10": 0.8, "MdR": 2.0}
    directions = (f"{text}->m1", f"m1->{text}")
    ranks = np.arange(1, 9)
    return RunResult(
        run_id=f"{task}/{objective}/{config or value}-seed{seed}", config_id=config or value, task=task,
        objective=objective,
        params={"objective": {"mode": f"{text} {value}"}, "task": {"k": text}, "encoders": {},
                "budget": {"steps": 10, text: text}},
        seed=seed, status="ok",
        metrics={"retrieval": {d: scores for d in directions},
                 f"retrieval_{text}": {d: scores for d in directions},
                 "per_query_ranks": {"retrieval": {d: encode_ranks(ranks) for d in directions}},
                 "classification": {f"linear:{text}": 0.5}},
        stability={"representation": {"positive_cosine": {f"{text}|m1": 0.3}, "positive_cosine_min": 0.3},
                   "singular": {"sigma1_share": 0.5}},
        versions={"torch": text, "pmrl_bench": "0.1.0", "plugins": {text: text}},
        device=text, command=f"pmrl-bench run --results {text}",
    )


def _pages(text: str) -> dict[str, str]:
    results = [_result(text, s, value=v) for s in range(2) for v in ("v1", "v2")]
    skipped = [Skipped(f"t/obj/{text}.json", f"invalid result: {text}")]
    return build_leaderboards(results, skipped, plots=False)


def _structure(page: str) -> list[tuple[str, int]]:
    """The block structure of a page: every token but the text inside lines, with its nesting."""
    return [(t.type, t.level) for t in MARKDOWN.parse(page)]


def _cells(line: str) -> int:
    """Unescaped ``|`` in a table line (a pipe after an odd number of backslashes is text)."""
    return sum(1 for m in re.finditer(r"(\\*)\|", line) if len(m.group(1)) % 2 == 0)


def test_hostile_strings_keep_every_page_intact():
    hostile, plain = _pages(HOSTILE), _pages("plain")
    assert sorted(hostile) == sorted(plain) == ["README.md", "t.md", "verdicts.json", "verdicts.md"]
    for name, page in hostile.items():
        assert _structure(page) == _structure(plain[name]), name  # no stray heading, list item, table row
        assert "<" not in page, name  # no raw HTML at all
        headings = [line for line in page.splitlines() if line.startswith("#")]
        assert len(headings) == len([line for line in plain[name].splitlines() if line.startswith("#")])
        for block in re.split(r"\n\s*\n", page):
            rows = [line for line in block.splitlines() if line.startswith("|")]
            assert len({_cells(row) for row in rows}) <= 1, (name, rows)  # same number of columns in every row
    html = MARKDOWN.render(hostile["t.md"])
    assert "&lt;script&gt;alert(1)&lt;/script&gt; `tick` **bold** [link](x)" in html  # shown, as text
    assert "<script>" not in html and "<strong>bold" not in html and "<h1>Heading" not in html


def test_a_results_path_with_a_newline_cannot_break_the_pages(tmp_path, capsys):
    """End to end: the recorded command holds the path; every page still parses to the same structure as the
    pages of the same results with an ordinary command."""
    results, boards = tmp_path / "res\nults|<b>", tmp_path / "boards"
    assert main(run_args(results, boards, seeds=1, steps=3)) == 0
    assert "Traceback" not in capsys.readouterr().err
    found, _ = ResultStore(results).scan()
    assert "\n" in found[0].command
    plain = build_leaderboards([r.model_copy(update={"command": "pmrl-bench run"}) for r in found], plots=False)
    written = {p.name: p.read_text() for p in sorted(boards.glob("*.md"))}
    assert sorted(written) == sorted(name for name in plain if name.endswith(".md"))
    for name, page in written.items():
        assert _structure(page) == _structure(plain[name]), name
        assert "<" not in page


@pytest.mark.parametrize("tasks", [["README"], ["README", "readme", "Readme"], ["CON", "con", "t"],
                                   ["verdicts", "Verdicts"]])
def test_page_names_never_collide_with_the_overview_or_each_other(tasks):
    results = [_result("x", 0, task=t) for t in tasks]
    pages = build_leaderboards(results, plots=False)
    assert pages["README.md"].startswith("# pmrl-bench leaderboards")
    markdown_pages = [name for name in pages if name not in ("README.md", "verdicts.md", "verdicts.json")]
    assert pages["verdicts.md"].startswith("# pmrl-bench verdicts")
    assert len(markdown_pages) == len(tasks)
    assert len({name.casefold() for name in pages}) == len(pages)  # distinct even on case-insensitive disks
    for task in tasks:  # each task's page is its own, and the overview links to it
        page = next(name for name in markdown_pages if pages[name].startswith(f"# Leaderboard: `{task}`"))
        assert f"[{task}]({page})" in pages["README.md"]


def test_plot_names_follow_the_page_names():
    stability = {"singular": {"sigma_mean": [1.5, 0.4], "curves": {"step": [0, 5], "sigma1_share": [0.4, 0.8]}}}
    result = _result("x", 0, task="README").model_copy(update={"stability": stability})
    pages = build_leaderboards([result])
    assert "![σ1 share and gradient norm per check](_README.scratch.curves.png)" in pages["_README.md"]
    assert not any(name.startswith("README.") and name != "README.md" for name in pages)


def test_legend_labels_with_dollar_signs_do_not_break_the_plots():
    pytest.importorskip("matplotlib")
    stability = {"singular": {"sigma_mean": [1.5, 0.4], "curves": {"step": [0, 5], "sigma1_share": [0.4, 0.8]}}}
    results = [_result("x", 0, value=v, config=f"c{i}").model_copy(update={"stability": stability})
               for i, v in enumerate((r"$\frac$", "$a$"))]
    pages = build_leaderboards(results)
    assert pages["t.scratch.curves.png"].startswith(b"\x89PNG")


def _peak_bytes(fn) -> tuple[object, int]:
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_bootstrap_memory_is_bounded_and_blocks_do_not_change_intervals(monkeypatch):
    """15 000 queries: the replicate weights at once would take 2000 x 15 000 x (8 + 8 + 4) bytes = 600 MB;
    drawn in blocks, the peak stays far below, and the interval is the same for any block size."""
    n = 15_000
    assert stats.N_BOOTSTRAP * n > stats.CACHED_WEIGHTS and n <= stats.MAX_BOOTSTRAP_QUERIES
    ranks = [np.random.default_rng(s).integers(1, 40, size=(2, n)) for s in range(2)]
    interval, peak = _peak_bytes(lambda: stats.bootstrap_over_seeds_and_queries(ranks, stats.recall_at(5)))
    assert interval is not None and interval[0] < interval[1]
    assert peak < 200 * 2**20, peak
    monkeypatch.setattr(stats, "WEIGHT_BLOCK", stats.WEIGHT_BLOCK // 7)
    assert stats.bootstrap_over_seeds_and_queries(ranks, stats.recall_at(5)) == interval


@pytest.mark.slow
def test_a_result_with_half_a_million_queries_is_ranked_in_bounded_memory(tmp_path):
    """About 4 MB of per-query ranks: before, the bootstrap asked for tens of GiB. Beyond
    MAX_BOOTSTRAP_QUERIES the page uses the seed bootstrap and says why."""
    n = 500_000
    result = _result("x", 0)
    ranks = encode_ranks(np.random.default_rng(0).integers(1, 1000, size=n))
    raw = result.model_dump()
    raw["metrics"]["per_query_ranks"] = {"retrieval": {d: ranks for d in raw["metrics"]["retrieval"]}}
    path = ResultStore(tmp_path).write(RunResult.model_validate(raw))
    assert path.stat().st_size > 3.5 * 2**20
    results, problems = ResultStore(tmp_path).scan()
    assert problems == [] and len(results) == 1
    pages, peak = _peak_bytes(lambda: build_leaderboards(results, plots=False))
    assert peak < 400 * 2**20, peak
    assert f"or rank more than {stats.MAX_BOOTSTRAP_QUERIES} queries" in pages["t.md"]
