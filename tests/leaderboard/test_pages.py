"""Leaderboard pages from result objects alone: numbers, best and ties, ranks, views, stability, determinism."""

from __future__ import annotations

import numpy as np

from pmrl_bench.evaluation.per_query import encode_ranks
from pmrl_bench.leaderboard import build_leaderboards, check_leaderboards, write_leaderboards
from pmrl_bench.results import RunResult

DIRECTIONS = ("a->b", "b->a")


def _ranks(r1: float, n: int, seed: int) -> np.ndarray:
    """n per-query ranks with a fraction r1 of them at rank 1, the rest spread over 2..n."""
    rng = np.random.default_rng(seed)
    hits = int(round(r1 * n))
    ranks = np.concatenate([np.ones(hits, dtype=int), rng.integers(2, n + 1, size=n - hits)])
    return rng.permutation(ranks)


def _scores(ranks: np.ndarray) -> dict[str, float]:
    return {"R@1": float((ranks <= 1).mean()), "R@5": float((ranks <= 5).mean()),
            "R@10": float((ranks <= 10).mean()), "MdR": float(np.median(ranks))}


def _result(objective, seed, r1, status="ok", config_id="c0", tau=None, task="t", n=None, stability=None, native=False):
    """A result whose retrieval scores come from per-query ranks (n queries) or, without n, from r1 directly."""
    metrics: dict = {}
    if status == "ok":
        if n:
            ranks = {d: _ranks(r1, n, seed * 10 + i) for i, d in enumerate(DIRECTIONS)}
            metrics["retrieval"] = {d: _scores(r) for d, r in ranks.items()}
            metrics["per_query_ranks"] = {"retrieval": {d: encode_ranks(r) for d, r in ranks.items()}}
        else:
            scores = {"R@1": r1, "R@5": min(1.0, r1 + 0.2), "R@10": min(1.0, r1 + 0.3), "MdR": 3.0 - r1}
            metrics["retrieval"] = {d: scores for d in DIRECTIONS}
        metrics["classification"] = {"linear:a": r1}
        if native:
            metrics["retrieval_native"] = {d: {"R@1": 0.9, "R@5": 1.0, "R@10": 1.0, "MdR": 1.0} for d in DIRECTIONS}
    params = {"objective": {"tau": tau} if tau is not None else {}, "task": {}, "encoders": {}, "budget": {"steps": 10}}
    return RunResult(
        run_id=f"{task}/{objective}/{config_id}-seed{seed}", config_id=config_id, task=task, objective=objective,
        params=params, seed=seed, status=status, metrics=metrics, stability=stability or {},
        versions={"pmrl_bench": "0.1.0", "torch": "x"}, command="pmrl-bench run",
    )


def _row(page: str, label: str, after: str = "") -> str:
    """The first table row of a configuration (its label, with or without the protocol tag)."""
    text = page.split(after, 1)[1] if after else page
    return next(line for line in text.splitlines()
                if line.startswith("|") and (f"`{label}`" in line or f"`{label} [" in line))


def _rank(row: str) -> str:
    return row.split("|")[1].strip()


def test_mean_std_seed_counts_and_provenance():
    results = [_result("good", 0, 0.5), _result("good", 1, 0.7), _result("bad", 0, 0.1),
               _result("bad", 1, 0.0, status="diverged")]
    page = build_leaderboards(results, plots=False)["t.md"]
    assert "**60.0 ± 14.1 [50.0, 70.0]**" in _row(page, "good")  # mean 0.6, sample std 0.1414, seed bootstrap
    assert "1/2 (1 diverged)" in _row(page, "bad") and "10.0 ± 0.0" in _row(page, "bad")
    assert "- Command: `pmrl-bench run`" in page and "steps=10" in page
    assert "bootstrap over seeds (these results store no per-query ranks" in page


def test_one_seed_ranks_no_one_apart_and_median_rank_is_shown():
    # The seed is the unit: one seed each cannot separate two configurations, however far apart.
    page = build_leaderboards([_result("good", 0, 0.9), _result("bad", 0, 0.1)], plots=False)["t.md"]
    assert "2.10 ± 0.00" in _row(page, "good") and "2.90 ± 0.00" in _row(page, "bad")
    assert _rank(_row(page, "good")) == "1" and _rank(_row(page, "bad")) == "1"
    assert "`good [scratch, last]`" in page  # the label names the protocol and the selection rule
    pairwise = page.split("### Pairwise comparison")[1].split("###")[0]
    assert "too few seeds (1 in common, 3 needed)" in pairwise and "+80.0 " in pairwise


def test_no_detectable_difference_shares_rank_one_and_a_clearly_worse_configuration_ranks_below_both():
    # alpha and beta differ by +5, -3, +1 points over three seeds (no consistent sign: no seed-level difference);
    # gamma is about 40 points below both on every seed: beaten by both, rank 3.
    per_seed = {"alpha": (0.52, 0.48, 0.50), "beta": (0.47, 0.51, 0.49), "gamma": (0.10, 0.09, 0.12)}
    results = [_result(o, s, r1[s], n=200) for s in range(3) for o, r1 in per_seed.items()]
    page = build_leaderboards(results, plots=False)["t.md"]
    alpha, beta, gamma = (_row(page, o) for o in ("alpha", "beta", "gamma"))
    assert _rank(alpha) == "1" and _rank(beta) == "1" and _rank(gamma) == "3"
    assert alpha.split("|")[4].strip().startswith("**") and beta.split("|")[4].strip().startswith("**")
    assert not gamma.split("|")[4].strip().startswith("**")
    assert "two-stage bootstrap" in page and "Holm-corrected" in page and "paired t-test over seeds" in page
    pairwise = page.split("### Pairwise comparison")[1].split("###")[0]
    assert "Exploratory, uncorrected for the planned family; verdicts: [verdicts.md](verdicts.md)" in pairwise
    assert "query-level p (given these trained models)" in pairwise
    alpha_beta = _row(pairwise, "alpha")
    assert "no detectable difference (smallest detectable:" in alpha_beta and "| 2/3 " in alpha_beta
    assert "+1.0 " in alpha_beta and "-3.0..+5.0" in alpha_beta
    assert pairwise.count("| beats") == 2 and "| 3/3 " in _row(pairwise, "gamma")


def test_two_stage_interval_covers_the_mean_and_narrows_with_more_queries():
    def width(n):
        page = build_leaderboards([_result("x", s, 0.4, n=n) for s in range(3)], plots=False)["t.md"]
        cell = _row(page, "x").split("|")[4]
        lo, hi = (float(v) for v in cell.split("[")[1].split("]")[0].split(","))
        mean = float(cell.strip().strip("*").split("±")[0])
        assert lo <= mean <= hi
        return hi - lo

    assert width(2000) < width(100) / 2


def test_rank_across_tasks_keeps_one_label_per_configuration():
    results = [_result(o, 0, r1, task=t, tau=0.05) for t in ("t1", "t2") for o, r1 in (("p", 0.6), ("q", 0.2))]
    results += [_result("p", 0, 0.1, task="t1", tau=0.5, config_id="c1")]
    overview = build_leaderboards(results, plots=False)["README.md"]
    assert "[t1](t1.md)" in overview and "[t2](t2.md)" in overview
    row = _row(overview.split("### Rank across tasks")[1], "p (objective.tau=0.05)")
    assert _rank(row) == "1.00" and row.split("|")[3].strip() == "1" and row.split("|")[4].strip() == "1"
    assert "`p (objective.tau=0.5) [scratch, last]`" in overview and "`q [scratch, last]`" in overview
    assert "## Protocol `scratch`" in overview and "- Budget: steps=10" in overview


def test_other_retrieval_views_are_surfaced_without_being_required():
    page = build_leaderboards([_result("x", 0, 0.4, native=True), _result("y", 0, 0.3)], plots=False)["t.md"]
    assert "### Retrieval (native), R@K in %" in page and '`metrics["retrieval_native"]`' in page
    native = page.split("### Retrieval (native)")[1]
    assert "**90.0 ± 0.0**" in _row(native, "x") and "–" in _row(native, "y")


def test_stability_table_flags_negative_signed_cosine_and_reports_cv_and_totals():
    def stab(cos, nonfinite):
        return {"representation": {"positive_cosine": {"a|b": cos}, "positive_cosine_min": cos},
                "optimisation": {"grad_norm_cv": 0.5, "non_finite": nonfinite}}

    results = [_result("x", 0, 0.4, stability=stab(-0.5, 0)), _result("x", 1, 0.4, stability=stab(-0.3, 0)),
               _result("y", 0, 0.4, stability=stab(0.8, 0)),
               _result("y", 1, 0.0, status="diverged", stability=stab(0.1, 1))]
    page = build_leaderboards(results, plots=False)["t.md"]
    row = next(line for line in page.splitlines() if line.startswith("| signed positive cosine a–b"))
    x_cell, y_cell = (c.strip() for c in row.split("|")[2:4])
    assert x_cell == "⚠ -0.400 ± 0.141 (CV 35%)" and y_cell == "0.800 ± 0.000"
    nonfinite = next(line for line in page.splitlines() if line.startswith("| non-finite loss or gradient"))
    assert "1 in 2 runs" in nonfinite


def test_rendering_is_deterministic_order_free_and_independent_of_plots(tmp_path):
    stability = {"singular": {"sigma_mean": [1.5, 0.7, 0.4], "curves": {"step": [0, 5], "sigma1_share": [0.4, 0.8]}},
                 "optimisation": {"curves": {"step": [5], "grad_norm": [1.0]}}}
    results = [_result("a", s, 0.1 * s + 0.1, n=64, stability=stability) for s in range(3)] + [_result("b", 0, 0.4)]
    first = build_leaderboards(results)
    assert build_leaderboards(list(reversed(results))) == first
    without_plots = build_leaderboards(results, plots=False)
    assert without_plots == {k: v for k, v in first.items() if isinstance(v, str)}
    assert "![σ1 share and gradient norm per check](t.scratch.curves.png)" in first["t.md"]
    pngs = sorted(k for k, v in first.items() if isinstance(v, bytes))
    if pngs:  # matplotlib installed (the test extra has it)
        assert pngs == ["t.scratch.curves.png", "t.scratch.spectrum.png"]
        assert all(first[k].startswith(b"\x89PNG") for k in pngs)
    write_leaderboards(tmp_path, first)
    assert check_leaderboards(tmp_path, first) == []
    (tmp_path / "README.md").unlink()
    assert check_leaderboards(tmp_path, first) == ["README.md"]
    (tmp_path / "t.md").write_text("edited", encoding="utf-8")
    assert "t.md" in check_leaderboards(tmp_path, first)


def test_a_view_whose_directions_differ_by_objective_averages_each_rows_own_directions():
    x, y = _result("x", 0, 0.4, native=True), _result("y", 0, 0.3, native=True)
    x.metrics.retrieval_native = {"a->b": {"R@1": 0.6, "R@5": 1.0, "R@10": 1.0, "MdR": 1.0}}
    y.metrics.retrieval_native = {"b->a": {"R@1": 0.2, "R@5": 1.0, "R@10": 1.0, "MdR": 2.0}}
    native = build_leaderboards([x, y], plots=False)["t.md"].split("### Retrieval (native)")[1]
    assert "Mean over each row's own directions" in native
    assert "**60.0 ± 0.0**" in _row(native, "x") and "20.0 ± 0.0" in _row(native, "y")


def test_a_task_page_opens_with_the_data_card_its_runs_recorded():
    card = {"name": "Toy | set", "description": "two\nviews of one thing", "source": "generated", "homepage": "",
            "licence": "CC0-1.0", "citation": "Doe (2026)", "modalities": [{"name": "a", "kind": "vector", "width": 4}],
            "num_classes": 3, "splits": {"train": 8, "val": 2, "test": 5}, "files": {"toy.csv": "ab" * 32}}
    results = [_result("x", s, 0.5).model_copy(update={"data_card": card}) for s in range(2)]
    page = build_leaderboards(results, plots=False)["t.md"]
    head = page.split("## Protocol", 1)[0]
    assert head.count("**Data card: Toy \\| set.** two views of one thing") == 1  # once, escaped, on one line
    for line in ("- Licence: CC0-1.0", "- Citation: Doe (2026)", "- Modalities: a (vector, 4); classes: 3",
                 "- Files: toy.csv (sha256 abababababab…)"):
        assert line in head
    assert "Data card" not in build_leaderboards([_result("x", 0, 0.5)], plots=False)["t.md"]  # none recorded
