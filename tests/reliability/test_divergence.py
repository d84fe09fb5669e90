"""Divergence is a result, not a crash; a plugin's exception fails its own run only; the exit status says so."""

from __future__ import annotations

import pytest
from reliability_helpers import TINY, AlignObjective, FaultyObjectives

from pmrl_bench.cli import main
from pmrl_bench.results import ResultStore


@pytest.fixture
def faulty(fresh_manager):
    fresh_manager.register_plugin(FaultyObjectives(), name="faulty-objectives")
    return fresh_manager


def _sweep(tmp_path, objectives: str, *sets: str, seeds: int = 1, steps: int = 12) -> tuple[int, dict]:
    argv = ["run", "--objectives", objectives, *TINY, "--steps", str(steps), "--seeds", str(seeds),
            "--results", str(tmp_path / "r"), "--leaderboard", str(tmp_path / "b")]
    for item in sets:
        argv += ["--set", item]
    status = main(argv)
    results, problems = ResultStore(tmp_path / "r").scan()
    assert problems == []
    return status, {(r.objective, r.seed): r for r in results}


@pytest.mark.parametrize(("switch", "k"), [("nan_at", 7), ("nan_grad_at", 4)])
def test_non_finite_loss_or_gradient_at_step_k_is_recorded_as_diverged(switch, k, faulty, tmp_path, capsys):
    status, runs = _sweep(tmp_path, "align,infonce", f"objective.align.{switch}={k}")
    assert status == 1
    diverged = runs[("align", 0)]
    assert diverged.status == "diverged" and diverged.diverged_step == k
    assert f"step {k}" in diverged.error
    optimisation = diverged.stability["optimisation"]  # the stability metrics up to the bad step are kept
    assert optimisation["steps"] == k and optimisation["non_finite"] == 1
    assert diverged.metrics.retrieval == {}  # nothing is evaluated from a diverged model
    assert runs[("infonce", 0)].status == "ok" and runs[("infonce", 0)].metrics.retrieval
    captured = capsys.readouterr()
    assert "1 ok, 1 diverged, 0 failed" in captured.out
    assert captured.err.strip() == "pmrl-bench: 1 run(s) diverged and 0 failed; see the result files' 'error'"
    page = (tmp_path / "b" / "synthetic.md").read_text()
    assert "1 diverged" in page  # the leaderboard shows it next to the numbers


def test_resumed_sweep_keeps_a_diverged_result_and_still_exits_1(faulty, tmp_path, capsys):
    """Resuming reports what the uninterrupted sweep reported: a kept diverged run is not 'all ok'."""
    assert _sweep(tmp_path, "align", "objective.align.nan_at=3")[0] == 1
    capsys.readouterr()
    status, runs = _sweep(tmp_path, "align", "objective.align.nan_at=3")
    assert status == 1 and runs[("align", 0)].status == "diverged"
    captured = capsys.readouterr()
    assert "0 ok, 0 diverged, 0 failed, 1 already done (1 diverged)" in captured.out
    assert "1 run(s) diverged" in captured.err


@pytest.mark.parametrize(
    ("objective", "setting", "expected"),
    [
        ("align", "objective.align.raise_at=3", "RuntimeError: plugin bug at step 3"),
        ("align", "objective.align.exit_at=2", "SystemExit: 3"),
        ("broken-factory", None, "RuntimeError: the factory itself is broken"),
    ],
)
def test_an_exception_inside_a_plugin_fails_only_its_run(objective, setting, expected, faulty, tmp_path, capsys):
    status, runs = _sweep(tmp_path, f"{objective},infonce", *([setting] if setting else []), seeds=2)
    assert status == 1
    for seed in (0, 1):
        failed = runs[(objective, seed)]
        assert failed.status == "failed" and expected in failed.error
        assert runs[("infonce", seed)].status == "ok"
    assert "2 ok, 0 diverged, 2 failed" in capsys.readouterr().out


def test_a_failed_result_is_retried_by_the_next_run(faulty, tmp_path, monkeypatch, capsys):
    """``failed`` records an error, not a measurement: after the plugin is fixed, the next run replaces it."""
    status, runs = _sweep(tmp_path, "align", "objective.align.raise_at=2")
    assert status == 1 and runs[("align", 0)].status == "failed"
    monkeypatch.setattr(AlignObjective, "faults_on", False)  # the same configuration, the bug fixed
    capsys.readouterr()
    status, runs = _sweep(tmp_path, "align", "objective.align.raise_at=2")
    assert status == 0 and runs[("align", 0)].status == "ok" and runs[("align", 0)].error is None
    assert "1 ok, 0 diverged, 0 failed, 0 already done" in capsys.readouterr().out


def test_metrics_the_schema_cannot_hold_fail_the_run_not_the_sweep(faulty, tmp_path, monkeypatch, capsys):
    """An evaluation that yields NaN retrieval scores cannot be stored as a number: the run is 'failed'."""
    from pmrl_bench.runner import train

    real = train.evaluate

    def nan_metrics(*args, **kwargs):
        metrics = real(*args, **kwargs)
        direction = next(iter(metrics["retrieval"]))
        metrics["retrieval"][direction]["R@1"] = float("nan")
        return metrics

    monkeypatch.setattr(train, "evaluate", nan_metrics)
    status, runs = _sweep(tmp_path, "infonce")
    assert status == 1
    assert runs[("infonce", 0)].status == "failed"
    assert runs[("infonce", 0)].error.startswith("result could not be stored:")
