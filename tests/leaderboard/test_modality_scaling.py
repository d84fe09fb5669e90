"""The modality-scaling page: runs of one task at several modality counts, compared per k, with a dash where an
objective does not accept k, and a plot of mean R@1 against k."""

from __future__ import annotations

import itertools

from pmrl_bench.leaderboard.modality_scaling import PAGE, PLOT, modality_count, scaling_files, sweep_results
from pmrl_bench.results import RunResult

NOISE = (0.0, 0.01, -0.01, 0.02, -0.015)


def _result(objective: str, k: int, seed: int, r1: float, status: str = "ok", tuned: bool = False) -> RunResult:
    names = [f"m{i}" for i in range(k)]
    scores = {"R@1": r1, "R@5": r1, "R@10": r1, "MdR": 2.0}
    directions = {f"{a}->{b}": scores for a, b in itertools.permutations(names, 2)}
    metrics = {"retrieval": directions} if status == "ok" else {}
    params = {"objective": {}, "task": {"modalities": k}, "encoders": {m: {"name": "mlp"} for m in names},
              "budget": {"steps": 10}}
    return RunResult(run_id=f"t/{objective}/k{k}-seed{seed}", config_id=f"k{k}{'t' if tuned else ''}", task="t",
                     objective=objective, params=params, seed=seed, status=status, metrics=metrics,
                     tuning={"trials": 30, "sampler": "random", "seed": 0} if tuned else None,
                     versions={"pmrl_bench": "0.1.0"}, command="pmrl-bench run")


def _runs(ks=(2, 4)) -> list[RunResult]:
    """pmrl gains on infonce as k grows (equal at 2, +10 points at 4); triangle only accepts 3."""
    out = []
    for k in ks:
        for seed in range(5):
            noise = NOISE[seed]
            out += [_result("infonce", k, seed, 0.40 + noise), _result("anchor", k, seed, 0.30 + noise),
                    _result("gram", k, seed, 0.20 + noise),
                    _result("pmrl", k, seed, 0.40 + 0.05 * (k - 2) + noise + 0.002 * (-1) ** seed),
                    _result("triangle", k, seed, 0.0, status="not_applicable")]
    return out


def test_the_modality_count_is_the_number_of_encoders():
    assert modality_count(_result("pmrl", 4, 0, 0.5)) == 4
    assert modality_count(_result("triangle", 6, 0, 0.0, status="not_applicable")) == 6


def test_a_task_at_one_modality_count_makes_no_page_and_tuned_runs_stay_out():
    three = [_result(o, 3, s, 0.5) for o in ("pmrl", "infonce") for s in range(5)]
    assert scaling_files(three, [], plots=False) == {}
    tuned = [_result("pmrl", 3, s, 0.9, tuned=True) for s in range(5)]
    assert {r.objective for r in sweep_results(tuned, _runs()) if r.tuning} == set()


def test_the_page_shows_means_per_k_dashes_where_not_applicable_and_verdicts_per_k():
    main_results = [r for r in _runs(ks=(3,)) if r.objective != "triangle"]
    main_results += [_result("triangle", 3, s, 0.25 + NOISE[s]) for s in range(5)]
    files = scaling_files(main_results, _runs(ks=(2, 4)), plots=False)
    page = files[PAGE]
    assert PLOT not in files
    row = next(line for line in page.splitlines() if line.startswith("| `triangle`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "–" and cells[2].startswith("25.1 ± ") and cells[2].endswith("(5)") and cells[3] == "–"
    pmrl = next(line for line in page.splitlines() if line.startswith("| `pmrl`"))
    assert "40.1 ±" in pmrl and "50.1 ±" in pmrl  # the mean over seeds at k = 2 and k = 4
    verdicts = [line for line in page.splitlines()
                if line.startswith("| 4 ") and "`pmrl`" in line and "`infonce`" in line]
    assert len(verdicts) == 1 and "beats" in verdicts[0] and "5/5" in verdicts[0]
    at_two = next(line for line in page.splitlines()
                  if line.startswith("| 2 ") and "`pmrl`" in line and "`infonce`" in line)
    assert "no detectable difference" in at_two
    assert "tie" not in page.lower().replace("modalities", "")


def test_the_plot_is_drawn_when_matplotlib_is_there():
    import pytest

    pytest.importorskip("matplotlib")
    files = scaling_files(_runs(ks=(3,)), _runs(ks=(2, 4)))
    assert files[PLOT].startswith(b"\x89PNG")


def test_leaderboard_modality_sweep_writes_the_page_links_it_and_checks_it(tmp_path, capsys):
    from pmrl_bench.cli import main
    from pmrl_bench.results import ResultStore

    main_dir, sweep_dir, out = tmp_path / "results", tmp_path / "sweep", tmp_path / "boards"
    for root, ks in ((main_dir, (3,)), (sweep_dir, (2, 4))):
        for result in _runs(ks):
            ResultStore(root).write(result)
    args = ["leaderboard", str(main_dir), "--out", str(out), "--modality-sweep", str(sweep_dir)]
    assert main(args) == 0
    assert (out / PAGE).is_file() and f"]({PAGE})" in (out / "README.md").read_text()
    assert main([*args, "--check"]) == 0
    (out / PAGE).write_text("edited\n")
    assert main([*args, "--check"]) == 1  # the page is checked like the others
    capsys.readouterr()
    assert main(["leaderboard", str(main_dir), "--out", str(out), "--modality-sweep", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--modality-sweep" in err[0] and "is not a results directory" in err[0]
