"""The committed results are what the committed code produces: one stored run is retrained from its own result
file and must give the same configuration id and (up to floating-point reduction order) the same metrics.
When a change to training or evaluation moves the numbers, this fails: regenerate `results/` and `leaderboards/`
with the profile in the README."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pmrl_bench.plugins import get_registry
from pmrl_bench.results import ResultStore
from pmrl_bench.runner.fingerprint import data_fingerprint
from pmrl_bench.runner.init_stage import InitStages
from pmrl_bench.runner.spec import spec_from_params
from pmrl_bench.runner.train import TrainOptions, train_and_evaluate
from pmrl_bench.splits import with_validation
from pmrl_bench.stability import default_monitors

RESULTS = Path(__file__).resolve().parents[1] / "results"
# Thread count and BLAS reduction order may differ from the machine that produced the results: allow a few
# test queries (of 512) to change rank, nothing more.
R_AT_1_TOLERANCE = 0.02
# A probe's accuracy may move a test prediction or two with the reduction order; a changed probe moves it more.
PROBE_TOLERANCE = 0.01


def _stored(task: str, objective: str, protocol: str, seed: int = 0):
    """The committed result of an untuned configuration of ``objective`` under ``protocol``."""
    results, _ = ResultStore(RESULTS).scan()
    matches = [r for r in results if (r.task, r.objective, r.seed, r.protocol) == (task, objective, seed, protocol)
               and r.status == "ok" and r.tuning is None]
    if not matches:
        pytest.skip(f"no committed result for {task}/{objective} seed {seed} under {protocol}")
    return matches[0]


@pytest.mark.parametrize(("objective", "protocol"), [("infonce", "scratch"), ("pmrl", "scratch"),
                                                     ("pmrl", "warm:infonce:300")])
def test_a_committed_run_reproduces_from_its_result_file(objective, protocol, tmp_path):
    stored = _stored("synthetic", objective, protocol)
    spec = spec_from_params(stored.task, stored.objective, stored.params, stored.seed)
    assert spec.config_id == stored.config_id  # the result file holds everything that defines the run

    registry = get_registry()
    data = with_validation(registry.get("task", spec.task).create(**spec.task_params).load())
    assert data_fingerprint(data) == stored.data_fingerprint
    # a warm start retrains its init stage from what the result records (its step-0 scores are compared below)
    inits = InitStages(ResultStore(tmp_path), registry, torch.device("cpu"), {spec.task: stored.data_fingerprint})
    init_state, _ = inits.starting_state(spec, data)
    outcome = train_and_evaluate(spec, data, registry,
                                 TrainOptions(device=torch.device("cpu"), monitors=default_monitors(), progress=False,
                                              init_state=init_state))
    assert outcome.status == "ok"
    for direction, scores in stored.metrics.retrieval.items():
        assert outcome.metrics["retrieval"][direction]["R@1"] == pytest.approx(scores["R@1"], abs=R_AT_1_TOLERANCE)
    for direction, scores in stored.metrics_at_init.retrieval.items():
        assert (outcome.metrics_at_init["retrieval"][direction]["R@1"]
                == pytest.approx(scores["R@1"], abs=R_AT_1_TOLERANCE))
    for stored_metrics, metrics in ((stored.metrics, outcome.metrics),
                                    (stored.metrics_at_init, outcome.metrics_at_init)):
        assert (stored_metrics.classification
                and metrics["classification"].keys() == stored_metrics.classification.keys())
        for view, accuracy in stored_metrics.classification.items():
            assert metrics["classification"][view] == pytest.approx(accuracy, abs=PROBE_TOLERANCE), view
    share = stored.stability["singular"]["sigma1_share"]
    assert outcome.stability["singular"]["sigma1_share"] == pytest.approx(share, abs=0.01)
