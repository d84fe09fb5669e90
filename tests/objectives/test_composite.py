"""Weighted composites of registered objectives: the name syntax, the summed loss, the runner and the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from objective_reference import random_embeddings

import pmrl_bench
from pmrl_bench import hookimpl
from pmrl_bench.cli import main
from pmrl_bench.composite import Part, canonical_name, display_name, format_weight, parse
from pmrl_bench.errors import UsageError
from pmrl_bench.plugins import get_registry
from pmrl_bench.results import ResultStore
from pmrl_bench.runner.sweep_plan import resolved_params
from pmrl_bench.runner.spec import Budget, spec_from_params
from pmrl_bench.runner.sweep_plan import SweepConfig, plan_sweep
from pmrl_bench.runner.train import TrainOptions, train_and_evaluate
from pmrl_bench.stability import default_monitors

REGISTERED = ["infonce", "pmrl", "gram", "pmrl-intra"]


def _grads(loss, leaves):
    return torch.autograd.grad(loss, leaves, allow_unused=True)


# -- names -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, parts, stored, shown",
    [
        ("infonce+0.1*pmrl", [Part("infonce"), Part("pmrl", 0.1)], "infonce+0.1xpmrl", "infonce + 0.1·pmrl"),
        ("2*gram + .5*pmrl-intra", [Part("gram", 2.0), Part("pmrl-intra", 0.5)], "2xgram+0.5xpmrl-intra",
         "2·gram + 0.5·pmrl-intra"),
        ("1e-3*pmrl+1*infonce", [Part("pmrl", 1e-3), Part("infonce")], "0.001xpmrl+infonce", "0.001·pmrl + infonce"),
        ("3e16*pmrl", [Part("pmrl", 3e16)], "3e16xpmrl", "3e16·pmrl"),
        ("0*pmrl+infonce", [Part("pmrl", 0.0), Part("infonce")], "0xpmrl+infonce", "0·pmrl + infonce"),
    ],
)
def test_names_parse_to_parts_and_the_stored_form_parses_back(name, parts, stored, shown):
    assert parse(name, REGISTERED) == parts
    assert canonical_name(parts) == stored
    assert parse(stored, REGISTERED) == parts
    assert display_name(stored) == shown and display_name("gram") == "gram"


def test_weights_format_without_plus_and_read_back_exactly():
    for weight in [0.1, 2.0, 1e-5, 1e16, 0.30000000000000004, 123.456]:
        text = format_weight(weight)
        assert "+" not in text and float(text) == weight


@pytest.mark.parametrize(
    "name, message",
    [
        ("infonce+nope", "unknown objective 'nope'"),
        ("0..1*pmrl", "malformed weight '0..1' in part '0..1*pmrl'"),
        ("-1*pmrl", "weight '-1' in part '-1*pmrl' is negative"),
        ("nan*pmrl", "weight 'nan' in part 'nan*pmrl' is not finite"),
        ("inf*pmrl+infonce", "is not finite"),
        ("infonce++pmrl", "empty part"),
        ("infonce+", "empty part"),
        ("0.5*", "names no objective"),
        ("pmrl+0.5*pmrl", "'pmrl' appears twice"),
        ("0*pmrl+0*infonce", "every weight is 0"),
    ],
)
def test_malformed_composites_are_one_line_usage_errors(name, message):
    with pytest.raises(UsageError, match="composite objective") as caught:
        get_registry().get("objective", name)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    if "unknown" not in message:
        assert "[WEIGHT*]NAME" in str(caught.value) or "twice" in message or "every weight" in message


def test_a_name_that_fits_no_results_path_is_refused():
    with pytest.raises(UsageError, match="at most 64 characters"):
        get_registry().get("objective", "+".join(f"0.123456789*{n}" for n in ("infonce", "pmrl", "gram", "pmrl-intra")))


def test_a_registered_name_is_never_parsed_as_a_composite(pmrl_plugin_manager, pmrl_register_plugin):
    class Plugin:
        @hookimpl
        def register_objectives(self, register):
            register("infonce+pmrl", "pmrl_bench.builtins.objectives.infonce:PairwiseInfoNCE")

    pmrl_register_plugin(Plugin(), name="plus-named")
    component = pmrl_plugin_manager.registry.get("objective", "infonce+pmrl")
    assert component.plugin == "plus-named" and not hasattr(component, "part_components")
    assert pmrl_plugin_manager.registry.get("objective", "infonce+0.5*pmrl").name == "infonce+0.5xpmrl"


def test_create_objective_and_the_registry_accept_both_forms():
    composite = pmrl_bench.create_objective("infonce+0.1*pmrl")
    assert composite.names == ["infonce", "pmrl"] and composite.weights == [1.0, 0.1]
    registry = get_registry()
    assert registry.get("objective", "infonce+0.1*pmrl").name == registry.get("objective", "infonce+0.1xpmrl").name
    assert "infonce+0.1xpmrl" not in registry.names("objective")  # synthesised on demand, never registered


# -- the summed loss ---------------------------------------------------------------------------------------------------
def test_a_weight_zero_part_leaves_loss_and_gradients_exactly_unchanged():
    emb = random_embeddings(8, 6, 3, seed=1, dtype=torch.float32)
    alone = pmrl_bench.create_objective("infonce")
    composite = pmrl_bench.create_objective("infonce+0*pmrl")
    a, c = alone(emb), composite(emb)
    assert torch.equal(a.loss, c.loss)
    leaves_a = list(emb.values()) + list(alone.parameters())
    leaves_c = list(emb.values()) + list(composite.parts[0].parameters())
    for ga, gc in zip(_grads(a.loss, leaves_a), _grads(c.loss, leaves_c)):
        assert torch.equal(ga, gc)
    assert set(c.terms) == {"infonce", "infonce/m0|m1", "infonce/m0|m2", "infonce/m1|m2", "pmrl", "pmrl/intra",
                            "pmrl/inter"}
    assert not c.terms["pmrl"].requires_grad and torch.isfinite(c.terms["pmrl"])


def test_weights_scale_losses_and_gradients():
    emb = random_embeddings(8, 6, 3, seed=2)
    infonce = pmrl_bench.create_objective("infonce", learnable=False)
    gram = pmrl_bench.create_objective("gram", learnable=False)
    doubled = pmrl_bench.create_objective("2*infonce", parts={"infonce": {"learnable": False}})
    out = doubled(emb)
    assert torch.equal(out.loss, 2 * infonce(emb).loss) and torch.equal(out.terms["infonce"], infonce(emb).loss)
    for g2, g1 in zip(_grads(out.loss, list(emb.values())), _grads(infonce(emb).loss, list(emb.values()))):
        assert torch.equal(g2, 2 * g1)
    mixed = pmrl_bench.create_objective(
        "0.3*infonce+0.7*gram", parts={"infonce": {"learnable": False}, "gram": {"learnable": False}}
    )(emb)
    expected = 0.3 * infonce(emb).loss + 0.7 * gram(emb).loss
    assert mixed.loss.item() == pytest.approx(expected.item(), abs=1e-12)
    for ours, theirs in zip(_grads(mixed.loss, list(emb.values())), _grads(expected, list(emb.values()))):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


def test_parts_are_submodules_whose_hooks_run():
    composite = pmrl_bench.create_objective("infonce+gram")
    assert [n for n, _ in composite.named_parameters()] == ["parts.0.log_scale", "parts.1.log_scale"]
    with torch.no_grad():
        for p in composite.parameters():
            p.fill_(10.0)
    composite.after_optimizer_step()
    assert all(p.item() == pytest.approx(math.log(100.0)) for p in composite.parameters())
    bad_anchor = pmrl_bench.create_objective("infonce+gram", parts={"gram": {"anchor": "text"}})
    with pytest.raises(ValueError, match="part 'gram': unknown anchor modality 'text'"):
        bad_anchor.check_modalities(["m0", "m1", "m2"])


def test_native_score_comes_from_the_one_trained_part_that_has_one():
    assert callable(getattr(pmrl_bench.create_objective("gram+0.1*pmrl"), "native_score", None))
    for name in ("infonce+pmrl", "gram+triangle", "0*gram+infonce"):
        assert getattr(pmrl_bench.create_objective(name), "native_score", None) is None, name


def test_a_weight_zero_part_does_not_move_the_random_state():
    emb = {m: e.detach().float() for m, e in random_embeddings(6, 4, 3, seed=3).items()}
    composite = pmrl_bench.create_objective("infonce+0*confu", parts={"confu": {"dim": 4}})  # confu: dropout 0.1
    composite.train()
    torch.manual_seed(5)
    composite(emb)
    after = torch.rand(4)
    torch.manual_seed(5)
    assert torch.equal(after, torch.rand(4))


def test_bad_parameters_of_a_composite_are_usage_errors():
    with pytest.raises(UsageError, match="unknown parameter of composite"):
        pmrl_bench.create_objective("infonce+pmrl", tau1=0.5)
    with pytest.raises(UsageError, match="unknown part of composite"):
        pmrl_bench.create_objective("infonce+pmrl", parts={"gram": {}})
    with pytest.raises(UsageError, match="weights are part of the name"):
        pmrl_bench.create_objective("infonce+pmrl", weights={"infonce": 1.0, "pmrl": 2.0})
    with pytest.raises(UsageError, match="tau1 and tau2 must be > 0"):
        pmrl_bench.create_objective("infonce+pmrl", parts={"pmrl": {"tau1": -1.0}})


# -- the runner and the command line -----------------------------------------------------------------------------------
def test_resolved_params_record_every_part_with_its_own_settings():
    overrides = {("objective", "pmrl"): {"tau1": "0.5"}}
    params = resolved_params(get_registry(), "objective", "infonce+0.1*pmrl+confu", overrides, dim=32)
    assert params["weights"] == {"infonce": 1.0, "pmrl": 0.1, "confu": 1.0}
    assert params["parts"]["pmrl"]["tau1"] == 0.5 and params["parts"]["pmrl"]["tau2"] == 0.1
    assert params["parts"]["infonce"] == get_registry().get("objective", "infonce").defaults()
    assert params["parts"]["confu"]["dim"] == 32
    with pytest.raises(UsageError, match="set a part's parameters"):
        resolved_params(get_registry(), "objective", "infonce+pmrl", {("objective", "infonce+pmrl"): {"x": "1"}})


TINY = ["--tasks", "synthetic", "--set", "task.synthetic.n_train=256", "--set", "task.synthetic.n_test=64",
        "--steps", "10", "--seeds", "1", "--device", "cpu", "--no-progress"]


@pytest.mark.slow
def test_a_composite_sweep_end_to_end(tmp_path, capsys):
    results, boards = tmp_path / "results", tmp_path / "boards"
    where = ["--results", str(results), "--leaderboard", str(boards)]
    argv = ["run", "--objectives", "infonce+0.1*pmrl,gram", "--set", "objective.pmrl.tau1=0.5", *TINY, *where]
    assert main(argv) == 0
    (path,) = (results / "synthetic" / "infonce+0.1xpmrl").glob("*.json")
    stored = json.loads(path.read_text())
    assert stored["objective"] == "infonce+0.1xpmrl" and stored["status"] == "ok"
    assert stored["params"]["objective"]["weights"] == {"infonce": 1.0, "pmrl": 0.1}
    assert stored["params"]["objective"]["parts"]["pmrl"]["tau1"] == 0.5
    assert list((results / "synthetic").iterdir()) and (results / "synthetic" / "gram").is_dir()
    capsys.readouterr()

    # the stored name is a valid objective name: the same sweep under it finds its run done
    again = ["run", "--objectives", "infonce+0.1xpmrl", "--set", "objective.pmrl.tau1=0.5", *TINY, *where]
    assert main(again) == 0
    assert "0 ok, 0 diverged, 0 failed, 1 already done" in capsys.readouterr().out

    # the result file alone rebuilds the run
    result = ResultStore(results).read(path)
    spec = spec_from_params(result.task, result.objective, result.params, result.seed)
    assert spec.config_id == result.config_id
    registry = get_registry()
    data = registry.get("task", spec.task).create(**spec.task_params).load()
    outcome = train_and_evaluate(spec, data, registry,
                                 TrainOptions(device=torch.device("cpu"), monitors=default_monitors(), progress=False))
    for direction, scores in result.metrics.retrieval.items():
        assert outcome.metrics["retrieval"][direction]["R@1"] == pytest.approx(scores["R@1"], abs=1e-9)


@pytest.mark.parametrize(
    "objectives, expected",
    [
        ("infonce+nope", "unknown objective 'nope'"),
        ("0..1*pmrl", "malformed weight '0..1'"),
        ("-1*pmrl", "is negative"),
        ("nan*pmrl", "is not finite"),
        ("infonce++pmrl", "empty part"),
    ],
)
def test_bad_composites_exit_2_with_one_line(objectives, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", f"--objectives={objectives}", *TINY]) == 2  # '=': argparse reads '-1*pmrl' as an option
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and expected in err
    assert not (tmp_path / "results").exists()


def test_a_composite_or_confu_init_stage_is_planned_under_its_stored_name_with_dim():
    base = dict(objectives=["infonce"], tasks=["synthetic"], seeds=1, budget=Budget(steps=1, batch_size=16, dim=8),
                overrides={("task", "synthetic"): {"n_train": "64", "n_test": "32"}}, device="cpu", progress=False)
    plan = plan_sweep(SweepConfig(**base, init="infonce+0.1*pmrl:5"), get_registry())
    init = plan.specs[0].protocol.init
    assert init.objective == "infonce+0.1xpmrl" and init.objective_params["weights"]["pmrl"] == 0.1
    assert plan.specs[0].protocol.name == "warm:infonce+0.1xpmrl:5"
    plan = plan_sweep(SweepConfig(**base, init="confu:5"), get_registry())
    assert plan.specs[0].protocol.init.objective_params["dim"] == 8
