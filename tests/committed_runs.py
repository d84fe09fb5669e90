"""Retrain committed runs from their result files and compare them with what is stored, metric by metric.

Shared by ``tests/test_committed_results.py`` (which bounds the deviations) and
``benchmarks/reproduction_spread.py`` (which measures them under other CPU kernels and thread counts), so the
tolerances are measured on exactly the code path the test runs.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pmrl_bench.plugins import get_registry
from pmrl_bench.results import ResultStore, RunResult
from pmrl_bench.runner.fingerprint import data_fingerprint
from pmrl_bench.runner.init_stage import InitStages
from pmrl_bench.runner.spec import spec_from_params
from pmrl_bench.runner.train import RunOutcome, TrainOptions, train_and_evaluate
from pmrl_bench.splits import with_validation
from pmrl_bench.stability import default_monitors

RESULTS = Path(__file__).resolve().parents[1] / "results"
# (task, objective, protocol) of the seed-0 untuned runs the test retrains: two objectives, a warm start included.
CASES = (("synthetic", "infonce", "scratch"), ("synthetic", "pmrl", "scratch"),
         ("synthetic", "pmrl", "warm:infonce:300"))
# The metric families the tolerances are set per: each moves by its own kind of step when kernels change.
FAMILIES = ("R@k", "MdR", "linear probe", "knn probe", "stability")
# A tolerance is MARGIN x the largest deviation benchmarks/reproduction_spread.py measured, and at least the
# family's floor: one query of 512 for R@k, one prediction for a probe, two ranks, the rounding of stored numbers.
MARGIN = 1.5
FLOORS = {"R@k": 0.005, "MdR": 2.0, "linear probe": 0.005, "knn probe": 0.005, "stability": 0.01}


@dataclass(frozen=True)
class Comparison:
    """One number of a retrained run beside the committed one."""

    family: str
    name: str  # where it is in the result, e.g. "metrics_at_init/retrieval/m0->m1/R@1"
    stored: float | None
    retrained: float | None

    @property
    def deviation(self) -> float:
        """Absolute difference; for stability numbers (of many scales) relative to the stored value when that
        is above 1. A number present on one side only is an infinite deviation."""
        if self.stored is None or self.retrained is None:
            return 0.0 if self.stored is None and self.retrained is None else math.inf
        difference = abs(self.retrained - self.stored)
        return difference / max(abs(self.stored), 1.0) if self.family == "stability" else difference


def stored_result(task: str, objective: str, protocol: str, seed: int = 0,
                  results: Path = RESULTS) -> RunResult | None:
    """The committed ``ok`` result of the untuned configuration of ``objective`` under ``protocol``, if any."""
    found, _ = ResultStore(results).scan()
    matches = [r for r in found if (r.task, r.objective, r.seed, r.protocol) == (task, objective, seed, protocol)
               and r.status == "ok" and r.tuning is None]
    return matches[0] if matches else None


def retrain(stored: RunResult, workdir: Path) -> RunOutcome:
    """Train and evaluate the run ``stored`` records, on the CPU, from nothing but the result file.

    Raises AssertionError when the file no longer defines the same configuration or data (the code changed what
    a configuration means). A warm start retrains its init stage under ``workdir``. A run trained in a seed batch
    (``cost.seed_batch``) is retrained in the same batch, by its own command narrowed to its task and objective:
    batched seeds share fused kernels, so alone it would differ by more than the kernels of another CPU do."""
    if int((stored.cost or {}).get("seed_batch") or 1) > 1:
        return _replay(stored, workdir)
    spec = spec_from_params(stored.task, stored.objective, stored.params, stored.seed)
    assert spec.config_id == stored.config_id, (spec.config_id, stored.config_id)
    registry = get_registry()
    data = with_validation(registry.get("task", spec.task).create(**spec.task_params).load())
    assert data_fingerprint(data) == stored.data_fingerprint
    cpu = torch.device("cpu")
    inits = InitStages(ResultStore(workdir), registry, cpu, {spec.task: stored.data_fingerprint})
    init_state, _ = inits.starting_state(spec, data)
    return train_and_evaluate(spec, data, registry, TrainOptions(device=cpu, monitors=default_monitors(),
                                                                 progress=False, init_state=init_state))


def _replay(stored: RunResult, workdir: Path) -> RunOutcome:
    """Run ``stored.command`` again for its own task and objective only, into ``workdir``, one run at a time; the
    outcome of the stored run's seed."""
    from pmrl_bench.cli import main

    narrowed = {"--objectives": stored.objective, "--tasks": stored.task, "--results": str(workdir / "results"),
                "--leaderboard": str(workdir / "leaderboards"), "--jobs": "1"}
    argv, words = [], shlex.split(stored.command)[1:]  # without the program name
    while words:
        word = words.pop(0)
        if word.split("=")[0] in narrowed:
            if "=" not in word:
                words.pop(0)
            continue
        argv.append(word)
    argv += [token for option, value in narrowed.items() for token in (option, value)]
    assert main(argv) == 0, argv
    found, problems = ResultStore(workdir / "results").scan()
    assert not problems
    again = next(r for r in found if r.config_id == stored.config_id and r.seed == stored.seed)
    assert again.data_fingerprint == stored.data_fingerprint
    assert again.cost["seed_batch"] == stored.cost["seed_batch"]
    return RunOutcome(again.status, again.metrics.model_dump(), again.stability,
                      metrics_at_init=again.metrics_at_init.model_dump() if again.metrics_at_init else None)


def compare(stored: RunResult, outcome: RunOutcome) -> list[Comparison]:
    """Every retrieval score, probe accuracy and scalar stability number of ``stored`` beside ``outcome``'s."""
    sections = [("metrics", stored.metrics.model_dump(), outcome.metrics)]
    if stored.metrics_at_init is not None:
        sections.append(("metrics_at_init", stored.metrics_at_init.model_dump(), outcome.metrics_at_init or {}))
    found: list[Comparison] = []
    for section, was, now in sections:
        for view, directions in was.items():
            if view == "classification":
                for probe, accuracy in (directions or {}).items():
                    family = "knn probe" if probe.startswith("knn") else "linear probe"
                    found.append(Comparison(family, f"{section}/{view}/{probe}", accuracy,
                                            (now.get(view) or {}).get(probe)))
            elif isinstance(directions, Mapping) and all(isinstance(s, Mapping) and "R@1" in s
                                                          for s in directions.values()):
                for direction, scores in directions.items():
                    for key, score in scores.items():
                        found.append(Comparison("MdR" if key == "MdR" else "R@k", f"{section}/{view}/{direction}/{key}",
                                                score, now.get(view, {}).get(direction, {}).get(key)))
    found += [Comparison("stability", f"stability/{name}", value, retrained)
              for name, value, retrained in _paired_numbers(stored.stability, outcome.stability)]
    return found


def _paired_numbers(stored: Mapping[str, Any], retrained: Mapping[str, Any],
                    prefix: str = "") -> Iterator[tuple[str, float | None, float | None]]:
    """Scalar numbers of a stability block with their counterparts. Not its curves, which the scalars summarise,
    nor the steps at which a curve peaks (``r1_peak_step``): on a flat curve the peak jumps by whole probe
    intervals (225 to 75 was measured) while its value, which is compared, barely moves."""
    for key, value in stored.items():
        if key == "curves" or key.endswith("_step"):
            continue
        other = retrained.get(key) if isinstance(retrained, Mapping) else None
        if isinstance(value, Mapping):
            yield from _paired_numbers(value, other if isinstance(other, Mapping) else {}, f"{prefix}{key}/")
        elif value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            yield f"{prefix}{key}", value, other if isinstance(other, (int, float)) else None
