"""Seeds trained as one model (``run --seed-batch``): each seed's result file is the one its own run writes, up to
float reduction order; a seed that diverges stops alone; components that do not declare support train alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from pmrl_bench import hookimpl
from pmrl_bench.builtins.objectives.infonce import PairwiseInfoNCE
from pmrl_bench.cli import main
from pmrl_bench.components import ObjectiveOutput
from pmrl_bench.runner.jobs import seed_groups
from pmrl_bench.runner.seed_batch import clip_per_member
from pmrl_bench.testing import TINY_TASK

DIVERGING_SEED = 2


class DivergesOnOneSeed(nn.Module):
    """InfoNCE, except that the run of seed 2 has an infinite loss from its first step: divergence by construction,
    decided by the seed the run was built under (a buffer, so each stacked member carries its own)."""

    supports_seed_batch = True

    def __init__(self) -> None:
        super().__init__()
        self.inner = PairwiseInfoNCE()
        self.register_buffer("explodes", torch.tensor(float(torch.initial_seed() == DIVERGING_SEED)))

    def forward(self, embeddings):
        output = self.inner(embeddings)
        loss = output.loss / (1 - self.explodes)  # infinite for that seed; no NaN in any other seed's gradient
        return ObjectiveOutput(loss=loss, terms=output.terms)

    def after_optimizer_step(self) -> None:
        self.inner.after_optimizer_step()


class NotDeclared(PairwiseInfoNCE):
    supports_seed_batch = False


class Plugin:
    @hookimpl
    def register_objectives(self, register):
        register("diverges-on-one-seed", DivergesOnOneSeed)
        register("infonce-undeclared", NotDeclared)


def _run(tmp_path: Path, name: str, *extra: str) -> int:
    return main(["run", "--objectives", "diverges-on-one-seed", "--tasks", TINY_TASK, "--seeds", "4", "--steps", "40",
                 "--batch-size", "16", "--dim", "16", "--device", "cpu", "--no-progress", "--init", "infonce:10",
                 "--select", "best", "--results", str(tmp_path / name), "--leaderboard", str(tmp_path / f"{name}-b"),
                 *extra])


def _results(root: Path) -> dict[int, dict]:
    return {json.loads(p.read_text())["seed"]: json.loads(p.read_text())
            for p in root.rglob("*.json") if not any(part.startswith("_") for part in p.parts)}


@pytest.mark.slow
def test_four_batched_seeds_write_the_result_files_of_four_sequential_runs(pmrl_register_plugin, tmp_path, capsys):
    pmrl_register_plugin(Plugin(), name="seed-batch-test")
    assert _run(tmp_path, "sequential") == 1  # one run diverged: exit status 1 either way
    assert _run(tmp_path, "batched", "--seed-batch", "4") == 1
    sequential, batched = _results(tmp_path / "sequential"), _results(tmp_path / "batched")
    assert sorted(sequential) == sorted(batched) == [0, 1, 2, 3]
    for seed in range(4):
        one, together = sequential[seed], batched[seed]
        for key in ("config_id", "run_id", "status", "diverged_step", "params", "protocol", "data_fingerprint"):
            assert one[key] == together[key], (seed, key)
        assert one["init"]["sha256"] == together["init"]["sha256"]
        assert together["cost"]["seed_batch"] == 4 and "seed_batch" not in one["cost"]
        if seed == DIVERGING_SEED:
            assert together["status"] == "diverged" and together["diverged_step"] == 1
            continue
        assert one["selection"]["step"] == together["selection"]["step"]
        for view in ("retrieval",):
            for direction, scores in one["metrics"][view].items():
                for metric, value in scores.items():
                    assert together["metrics"][view][direction][metric] == pytest.approx(value, abs=0.01)
        for probe, value in one["metrics"]["classification"].items():
            assert together["metrics"]["classification"][probe] == pytest.approx(value, abs=0.02)
        for key in ("loss_final", "grad_norm_median"):
            assert together["stability"]["optimisation"][key] == pytest.approx(
                one["stability"]["optimisation"][key], rel=1e-3)


def test_a_component_that_does_not_declare_support_trains_alone_with_one_line(pmrl_register_plugin, tmp_path,
                                                                             capsys):
    pmrl_register_plugin(Plugin(), name="seed-batch-test")
    code = main(["run", "--objectives", "infonce-undeclared", "--tasks", TINY_TASK, "--seeds", "2", "--steps", "5",
                 "--batch-size", "16", "--dim", "8", "--device", "cpu", "--no-progress", "--seed-batch", "auto",
                 "--results", str(tmp_path / "r"), "--leaderboard", str(tmp_path / "b")])
    assert code == 0
    err = capsys.readouterr().err
    assert err.count("train one after another: objective 'infonce-undeclared' does not declare "
                     "supports_seed_batch") == 1
    assert all("seed_batch" not in r["cost"] for r in _results(tmp_path / "r").values())


@pytest.mark.parametrize(("ids", "size", "expected"), [
    (["a", "a", "a", "b", "b"], 2, [[0, 1], [2], [3, 4]]),
    (["a", "a", "a", "b", "b"], "auto", [[0, 1, 2], [3, 4]]),
    (["a", "b", "a"], "auto", [[0], [1], [2]]),  # only consecutive runs share a model
    (["a", "a"], 1, [[0], [1]]),
])
def test_seed_groups(ids, size, expected):
    assert seed_groups(ids, size) == expected


def test_the_clip_of_each_member_is_its_own_clip_grad_norm():
    generator = torch.Generator().manual_seed(0)
    grads = [torch.randn(3, 4, 5, generator=generator) * 3, torch.randn(3, 7, generator=generator)]
    grads[1][1] = float("nan")  # one member's non-finite gradient stays its own
    stacked = [nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(stacked, grads):
        p.grad = g.clone()
    norms = clip_per_member(stacked, 1.0)
    for member in (0, 2):
        alone = [nn.Parameter(torch.zeros_like(g[member])) for g in grads]
        for p, g in zip(alone, grads):
            p.grad = g[member].clone()
        norm = nn.utils.clip_grad_norm_(alone, 1.0)
        assert norms[member] == pytest.approx(norm.item(), rel=1e-6)
        for p, q in zip(stacked, alone):
            torch.testing.assert_close(p.grad[member], q.grad)
    assert not torch.isfinite(norms[1])


@pytest.mark.slow
def test_worker_processes_train_seed_groups_as_the_serial_sweep_does(pmrl_plugin_manager, tmp_path):
    def run(name: str, *extra: str) -> dict:
        args = ["run", "--objectives", "pmrl-testing-infonce,pmrl", "--tasks", TINY_TASK, "--seeds", "2", "--steps",
                "10", "--batch-size", "16", "--dim", "8", "--device", "cpu", "--no-progress", "--seed-batch", "auto",
                "--results", str(tmp_path / name), "--leaderboard", str(tmp_path / f"{name}-b"), *extra]
        assert main(args) == 0
        return _results_by_run(tmp_path / name)

    serial, parallel = run("serial"), run("parallel", "--jobs", "2")
    assert sorted(serial) == sorted(parallel) and len(serial) == 4
    for key, result in serial.items():
        assert result["cost"]["seed_batch"] == parallel[key]["cost"]["seed_batch"] == 2
        assert result["metrics"] == parallel[key]["metrics"]


def _results_by_run(root: Path) -> dict[tuple[str, int], dict]:
    found = {}
    for path in root.rglob("*.json"):
        if not any(part.startswith("_") for part in path.parts):
            result = json.loads(path.read_text())
            found[(result["objective"], result["seed"])] = result
    return found
