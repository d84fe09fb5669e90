"""The planned comparisons: who meets whom (defaults with defaults, tuned with tuned, references once), one Holm
correction over every task and protocol, inert marks in the verdict, a deterministic page and document, the CLI."""

from __future__ import annotations

import json

import pytest
from statsmodels.stats.multitest import multipletests

from pmrl_bench.cli import main
from pmrl_bench.leaderboard import build_leaderboards
from pmrl_bench.leaderboard.verdicts import planned_comparisons, verdict_files, verdicts_json
from pmrl_bench.results import ResultStore, RunResult

DIRECTIONS = ("a->b", "b->a")
TUNING = {"trials": 10, "sampler": "random", "seed": 0}
INERT = {"optimisation": {"curves": {"step": [0, 5, 10], "loss": [0.0, 0.0, 0.0]}}}


def _result(objective: str, seed: int, r1: float, task: str = "t", config_id: str = "c0", tau: float | None = None,
            tuned: bool = False, inert: bool = False, status: str = "ok") -> RunResult:
    """A result whose mean cosine R@1 over both directions is ``r1``."""
    scores = {"R@1": r1, "R@5": min(1.0, r1 + 0.2), "R@10": min(1.0, r1 + 0.3), "MdR": 2.0}
    params = {"objective": {"tau": tau} if tau is not None else {}, "task": {}, "encoders": {}, "budget": {"steps": 10}}
    return RunResult(
        run_id=f"{task}/{objective}/{config_id}-seed{seed}", config_id=config_id, task=task, objective=objective,
        params=params, seed=seed, status=status,
        metrics={"retrieval": {d: scores for d in DIRECTIONS}} if status == "ok" else {},
        stability=INERT if inert else {}, tuning=TUNING if tuned else None,
        versions={"pmrl_bench": "0.1.0"}, command="pmrl-bench run",
    )


# Per-seed mean R@1 of each default configuration (5 seeds): x clearly above infonce on every seed, anchor close to
# infonce, gram far below both.
LEVELS = {"infonce": 0.50, "anchor": 0.505, "gram": 0.20, "x": 0.60}
NOISE = (0.0, 0.01, -0.01, 0.02, -0.015)


def _family(tasks: tuple[str, ...] = ("t", "u")) -> list[RunResult]:
    out = [_result(o, s, level + NOISE[(s + i) % 5], task=t)
           for t in tasks for i, (o, level) in enumerate(LEVELS.items()) for s in range(5)]
    # y has two untuned configurations (no plain-named default): outside the family
    out += [_result("y", s, 0.9, task="t", config_id=f"c{k}", tau=tau) for s in range(5)
            for k, tau in ((1, 0.05), (2, 0.5))]
    # tuned: x and infonce (anchor and gram untuned only)
    out += [_result(o, s, level + 0.05 + NOISE[s], task="t", config_id="tuned", tuned=True)
            for o, level in (("x", 0.6), ("infonce", 0.5)) for s in range(5)]
    return out


def _key(p) -> tuple[str, str, str, str, str]:
    return p.task, p.protocol, p.setting, p.a.objective, p.b.objective


def test_the_family_pairs_defaults_and_tuned_alike_and_references_once():
    planned = planned_comparisons(_family())
    keys = [_key(p) for p in planned]
    defaults = [("anchor", "infonce"), ("gram", "infonce"), ("x", "infonce"), ("gram", "anchor"), ("x", "anchor"),
                ("x", "gram")]
    expected = [("t", "scratch", "default", a, b) for a, b in defaults]
    expected += [("t", "scratch", "tuned", "x", "infonce")]
    expected += [("u", "scratch", "default", a, b) for a, b in defaults]
    assert keys == expected  # no y, no duplicate reference pair, tuned only against tuned
    assert all("y" not in (p.a.objective, p.b.objective) for p in planned)
    tuned = planned[6]
    assert "tuned: 10 trials" in tuned.a.label and "tuned: 10 trials" in tuned.b.label


def test_holm_runs_once_over_every_task_and_protocol():
    planned = planned_comparisons(_family())
    raw = [p.comparison.p_value for p in planned]
    expected = multipletests(raw, alpha=0.05, method="holm")[1]
    assert [p.comparison.p_adjusted for p in planned] == pytest.approx(list(expected))
    # Holm over one task alone would give smaller adjusted p: the family really spans both tasks.
    alone = planned_comparisons([r for r in _family() if r.task == "t"])
    assert alone[0].comparison.p_adjusted <= planned[0].comparison.p_adjusted
    verdicts = {(_key(p)): p.verdict() for p in planned}
    assert verdicts[("t", "scratch", "default", "x", "infonce")] == "beats"
    assert verdicts[("t", "scratch", "default", "gram", "infonce")] == "loses to"
    assert verdicts[("t", "scratch", "default", "anchor", "infonce")] == "no detectable difference"


def test_inert_runs_are_named_in_the_verdict():
    results = [r for r in _family(("t",)) if r.objective != "x"]
    results += [_result("x", s, 0.6 + NOISE[s], inert=s < 4) for s in range(5)]
    planned = {_key(p): p for p in planned_comparisons(results)}
    x = planned[("t", "scratch", "default", "x", "infonce")]
    assert x.marks == ("x inert in 4/5 seeds",)
    assert x.verdict() == "beats (x inert in 4/5 seeds)"
    entry = json.loads(verdicts_json(list(planned.values())))["comparisons"]
    assert any(e["verdict"] == "beats (x inert in 4/5 seeds)" and e["marks"] == ["x inert in 4/5 seeds"]
               for e in entry)


def test_failed_seeds_are_left_out_and_too_few_seeds_are_not_tested():
    results = [_result("infonce", s, 0.5) for s in range(3)]
    results += [_result("x", 0, 0.7), _result("x", 1, 0.7), _result("x", 2, 0.0, status="diverged")]
    (planned,) = planned_comparisons(results)
    assert planned.comparison.seeds == (0, 1) and planned.verdict() == "too few seeds"
    files = verdict_files(results)
    assert "too few seeds (2 in common, 3 needed)" in files["verdicts.md"]
    document = json.loads(files["verdicts.json"])
    assert document["family_size"] == 0 and document["comparisons"][0]["p_value"] is None


def test_page_and_document_are_deterministic_and_built_with_the_leaderboards():
    results = _family()
    files = verdict_files(results)
    assert verdict_files(list(reversed(results))) == files
    document = json.loads(files["verdicts.json"])
    assert files["verdicts.json"] == json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert document["version"] == 1 and document["family_size"] == 13 and document["alpha"] == 0.05
    assert document["references"] == ["infonce", "anchor", "gram"]
    first = document["comparisons"][0]
    assert set(first) >= {"task", "protocol", "setting", "a", "b", "seeds", "differences", "mean", "interval",
                          "p_value", "p_sign_flip", "p_adjusted", "agree", "n", "min_detectable", "verdict", "marks"}
    assert all(d == round(d, 4) for e in document["comparisons"] for d in e["differences"])
    page = files["verdicts.md"]
    assert "family of 13 tested comparisons" in page and "α = 0.05" in page and "70%" in page
    assert "## `t`, protocol `scratch`" in page and "| 5/5 " in page
    assert "smallest detectable" in page and "tie" not in page.lower().split()
    pages = build_leaderboards(results, plots=False)
    assert pages["verdicts.md"] == page and pages["verdicts.json"] == files["verdicts.json"]
    assert "[verdicts](verdicts.md)" in pages["README.md"]
    other = build_leaderboards(results, plots=False, references=("x",))
    assert json.loads(other["verdicts.json"])["references"] == ["x"]


def test_no_generated_page_says_tie():
    pages = build_leaderboards(_family(), plots=False)
    for name, content in pages.items():
        words = {w.strip(".,;:()`*|") for w in content.lower().split()}
        assert not words & {"tie", "ties", "tied"}, name


def _store(tmp_path) -> str:
    store = ResultStore(tmp_path / "results")
    for r in _family(("t",)):
        store.write(r)
    return str(store.root)


def test_cli_prints_the_table_or_the_json(tmp_path, capsys):
    results = _store(tmp_path)
    assert main(["verdicts", results]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# pmrl-bench verdicts") and "| `x`" in out
    assert main(["verdicts", results, "--references", "anchor", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["references"] == ["anchor"] and {e["b"]["objective"] for e in document["comparisons"]} == {
        "anchor"}


@pytest.mark.parametrize(("argv", "expected"), [
    (["verdicts", "{results}", "--references", "infonce,nope"], "unknown reference objective 'nope'"),
    (["verdicts", "{tmp}/missing"], "does not exist"),
    (["verdicts", "{tmp}"], "no result files"),
    (["verdicts", "{results}", "--references", ","], "no reference objective given"),
    (["leaderboard", "{results}", "--out", "{tmp}/boards", "--references", "nope"], "unknown reference objective"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, expected):
    results = _store(tmp_path)
    (tmp_path / "empty").mkdir()
    argv = [a.format(results=results, tmp=tmp_path / "empty" if a == "{tmp}" else tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err and "Traceback" not in err
