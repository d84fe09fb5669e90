"""Objectives that accept only some numbers of modalities: declared at registration or on the class, reported as not
applicable to a task with another count (one line, no failed run, a dash on the page), and the sweep goes on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pmrl_bench import hookimpl
from pmrl_bench.cli import main
from pmrl_bench.errors import PluginError, UsageError
from pmrl_bench.leaderboard.build import build_leaderboards
from pmrl_bench.modality_counts import accepted_counts, declared_counts, describe_counts, not_applicable_reason
from pmrl_bench.results import ResultStore, RunResult
from pmrl_bench.runner.spec import Budget
from pmrl_bench.runner.sweep_plan import SweepConfig, plan_sweep
from pmrl_bench.testing import ContractViolation, reference_objective
from pmrl_bench.testing.modality_counts import check_objective_modality_counts

FOUR = ["--set", "task.synthetic.modalities=4", "--set", "task.synthetic.n_train=96", "--set",
        "task.synthetic.n_test=48", "--steps", "2", "--batch-size", "16", "--dim", "8", "--seeds", "1",
        "--no-progress"]


class _Pairs(torch.nn.Module):
    """Pairwise InfoNCE that declares, on its class, the counts it accepts."""

    accepted_modalities = (2, 3)

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        self.inner = reference_objective(temperature)

    def forward(self, embeddings):
        return self.inner(embeddings)


class _Plugin:
    @hookimpl
    def register_objectives(self, register):
        register("pairs-only", _Pairs)  # (2, 3) from the class
        register("three-only", _Pairs, modalities=(3, 4))  # registration (3, 4) and class (2, 3): 3
        register("even", "pmrl_bench.testing:reference_objective", modalities=range(2, 9, 2))
        register("bad-counts", "pmrl_bench.testing:reference_objective", modalities=(1, "3"))


@pytest.fixture
def registry(fresh_manager):
    fresh_manager.register_plugin(_Plugin(), name="counts-plugin")
    return fresh_manager.registry


def test_counts_come_from_the_registration_and_the_class_and_must_hold_both(registry):
    assert declared_counts(registry.get("objective", "pairs-only")) == (2, 3)
    assert declared_counts(registry.get("objective", "three-only")) == (3,)
    assert declared_counts(registry.get("objective", "even")) == (2, 4, 6, 8)
    assert declared_counts(registry.get("objective", "infonce")) is None
    assert declared_counts(registry.get("objective", "triangle")) == (3,)
    assert declared_counts(registry.get("objective", "gram")) == tuple(range(2, 9))
    # a weighted sum accepts what every part accepts
    assert declared_counts(registry.get("objective", "infonce+0.5*triangle")) == (3,)
    assert (describe_counts(None), describe_counts((3,)), describe_counts((2, 3, 4)), describe_counts((2, 4))) == (
        "any number (2 or more)", "3", "2 to 4", "2, 4")
    with pytest.raises(PluginError, match=r"objective 'bad-counts' of plugin 'counts-plugin' declares accepted "
                                          r"modality counts \(1, '3'\); expected integers of 2 or more"):
        declared_counts(registry.get("objective", "bad-counts"))


def test_a_built_objective_narrows_its_counts_and_says_which_parameter_to_set(registry):
    confu = registry.get("objective", "confu")
    assert declared_counts(confu) == tuple(range(3, 9))
    built = confu.create(dim=8)
    assert accepted_counts(confu, built) == (3,)
    reason = not_applicable_reason(confu, built, ["a", "b", "c", "d"])
    assert "built for 3 modalities and the task has 4" in reason and "objective.confu.modalities=4" in reason
    assert not_applicable_reason(confu, confu.create(dim=8, modalities=4), ["a", "b", "c", "d"]) is None
    triangle = registry.get("objective", "triangle")
    assert not_applicable_reason(triangle, triangle.create(), ["a", "b"]) == (
        "it accepts 3 modalities and the task has 2 (a, b)")


def test_planning_sets_the_pair_aside_in_one_line_and_checks_the_others(registry, capsys):
    config = SweepConfig(objectives=["infonce", "triangle", "pairs-only"], tasks=["synthetic"], seeds=2,
                         budget=Budget(steps=1, batch_size=16, dim=8), device="cpu", progress=False,
                         overrides={("task", "synthetic"): {"modalities": "4", "n_train": "64", "n_test": "32"}})
    plan = plan_sweep(config, registry)
    assert set(plan.not_applicable) == {("synthetic", "triangle"), ("synthetic", "pairs-only")}
    assert len(plan.specs) == 6  # every run is planned: the executor records the not-applicable ones
    err = capsys.readouterr().err.strip().splitlines()
    assert len([line for line in err if "not applicable" in line]) == 2
    assert ("pmrl-bench: objective 'triangle' is not applicable to task 'synthetic', so it is not trained there: "
            "it accepts 3 modalities and the task has 4 (m0, m1, m2, m3)") in err
    # an anchor the task does not have is still bad input, where the count fits
    config.objectives, config.overrides[("task", "synthetic")]["modalities"] = ["triangle"], "3"
    config.overrides[("objective", "triangle")] = {"anchor": "nope"}
    with pytest.raises(UsageError, match="objective 'triangle' cannot run on task 'synthetic'"):
        plan_sweep(config, registry)


def test_a_warm_start_objective_must_apply_to_every_task(registry):
    config = SweepConfig(objectives=["infonce"], tasks=["synthetic"], seeds=1, init="triangle:2",
                         budget=Budget(steps=1, batch_size=16, dim=8), device="cpu", progress=False,
                         overrides={("task", "synthetic"): {"modalities": "4", "n_train": "64", "n_test": "32"}})
    with pytest.raises(UsageError, match=r"--init objective 'triangle' cannot start task 'synthetic': it accepts 3 "
                                         r"modalities and the task has 4"):
        plan_sweep(config, registry)


def test_the_contract_checks_a_declaration(registry):
    assert check_objective_modality_counts(registry.get("objective", "even"), modalities=2) == (2, 4, 6, 8)
    assert check_objective_modality_counts(registry.get("objective", "infonce")) is None
    with pytest.raises(ContractViolation, match=r"it accepts 2, 4, 6, 8 modalities, and the contract checks it with "
                                                r"3; set modalities = 2 on the contract class"):
        check_objective_modality_counts(registry.get("objective", "even"))
    with pytest.raises(ContractViolation, match="declares accepted modality counts"):
        check_objective_modality_counts(registry.get("objective", "bad-counts"))


def _page_rows(page: str, label: str) -> list[str]:
    return [line for line in page.splitlines() if line.startswith("|") and f"`{label}" in line]


@pytest.mark.slow
def test_a_sweep_over_four_modalities_trains_the_rest_and_dashes_the_objective(tmp_path: Path, capsys):
    results, pages = tmp_path / "results", tmp_path / "pages"
    command = ["run", "--objectives", "infonce,triangle", "--tasks", "synthetic", "--results", str(results),
               "--leaderboard", str(pages), *FOUR]
    assert main(command) == 0
    out, err = capsys.readouterr()
    assert "2 runs: 1 ok, 0 diverged, 0 failed, 1 not applicable, 0 already done" in out
    assert err.count("'triangle' is not applicable to task 'synthetic'") == 1
    stored, problems = ResultStore(results).scan()
    assert not problems and {(r.objective, r.status) for r in stored} == {("infonce", "ok"),
                                                                          ("triangle", "not_applicable")}
    skipped = next(r for r in stored if r.objective == "triangle")
    assert skipped.error == "it accepts 3 modalities and the task has 4 (m0, m1, m2, m3)"
    assert not skipped.metrics.retrieval
    page = (pages / "synthetic.md").read_text()
    cells = _cells(page, "triangle [scratch, last]")
    assert cells[0] == "–" and cells[2] == "not applicable" and set(cells[3:]) == {"–"}
    assert "- `triangle [scratch, last]`: not applicable, so not trained: it accepts 3 modalities" in page
    assert "`triangle` (not applicable)" in (pages / "README.md").read_text()
    # run again: the trained run is reused, the decision is made again (an objective may come to accept the count)
    assert main([*command, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["runs"]["not_applicable"] == 1 and summary["runs"]["already_done"] == 1
    configurations = summary["tasks"]["synthetic"]["configurations"]
    dashed = next(c for c in configurations if c["objective"] == "triangle")
    assert dashed["rank"] is None and dashed["seeds"]["not_applicable"] == 1


def _cells(page: str, label: str) -> list[str]:
    (row,) = _page_rows(page, label)
    return [c.strip() for c in row.strip("|").split("|")]


def test_a_task_whose_only_runs_are_not_applicable_still_has_a_page(tmp_path: Path):
    store = ResultStore(tmp_path)
    base = {"run_id": "r", "config_id": "c0", "task": "t", "objective": "triangle", "seed": 0,
            "params": {"objective": {}, "task": {"modalities": 4}, "budget": {"steps": 2}},
            "versions": {"pmrl_bench": "0"}, "status": "not_applicable",
            "error": "it accepts 3 modalities and the task has 4 (a, b, c, d)"}
    store.write(RunResult(**base))
    pages = build_leaderboards(store.scan()[0], plots=False)
    assert _cells(pages["t.md"], "triangle [scratch, last]") == ["`triangle [scratch, last]`", "not applicable", "–"]
    assert "not applicable, so not trained: it accepts 3 modalities" in pages["t.md"]
    assert "### Stability" not in pages["t.md"]  # nothing trained: no empty sections
    assert _cells(pages["README.md"], "triangle")[1:] == ["not applicable", "`triangle` (not applicable)"]
