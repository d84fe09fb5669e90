"""The tuning section of a task page: each study's budget, its defaults trial and whether it was still improving."""

from __future__ import annotations

from pathlib import Path

from pmrl_bench.leaderboard.tuning import tuning_section
from pmrl_bench.tuning.records import TrialRecord, TunedParams


def _record(objective: str, values: list[float]) -> tuple[Path, TunedParams]:
    trials = [TrialRecord(number=i, value=v, status="ok", params={"budget": {"lr": 1e-3 * (i + 1)}},
                          published_defaults=i == 0) for i, v in enumerate(values)]
    best = max(trials, key=lambda t: (t.value, -t.number))
    return Path(f"{objective}.json"), TunedParams(
        study=f"t/{objective}/x", study_id="x", task="t", objective=objective, protocol="scratch", context={},
        context_id="c", space={}, metric="mean_R@1", sampler="random", sampler_seed=0, trial_seed=1000,
        trials_requested=len(values), trials=trials, best=best)


def _row(lines: list[str], objective: str) -> str:
    return next(line for line in "\n".join(lines).splitlines() if line.startswith(f"| `{objective}`"))


def test_the_section_shows_the_defaults_trial_and_flags_a_study_still_improving():
    lines = tuning_section([_record("early", [0.30, 0.50] + [0.2] * 8), _record("late", [0.30] * 9 + [0.60])], "t")
    early, late = _row(lines, "early"), _row(lines, "late")
    assert "| 30.0 " in early and "| 50.0 " in early and r"\#1 " in early and "still improving" not in early
    assert r"\#9 (still improving)" in late and "| 60.0 " in late
    assert any("trial 0, which trains the published defaults" in line for line in lines)
