"""`pmrl-bench tune`: equal budgets, persistence, the validation split only, bad input before any trial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pmrl_bench import hookimpl
from pmrl_bench.cli import main
from pmrl_bench.components import VECTOR, Modality, Split, TaskData
from pmrl_bench.results import ResultStore
from pmrl_bench.tuning.records import read_record
from pmrl_bench.tuning.space import Choice, LogUniform

TINY = ["--tasks", "synthetic", "--set", "task.synthetic.n_train=160", "--set", "task.synthetic.n_test=100",
        "--steps", "4", "--batch-size", "32", "--dim", "8", "--no-progress"]


def _records(root: Path) -> dict[str, object]:
    return {p.parent.name: read_record(p) for p in sorted((root / "_tuning").rglob("*.json"))}


def _study_trials(root: Path, objective: str):
    import optuna

    storage = f"sqlite:///{(root / '_tuning' / 'studies.db').resolve()}"
    name = next(s.study_name for s in optuna.get_all_study_summaries(storage) if f"/{objective}/" in s.study_name)
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def test_every_objective_gets_the_same_trials_sampler_and_budget_draws(tmp_path):
    root = tmp_path / "results"
    assert main(["tune", "--objectives", "infonce,pmrl", "--trials", "3", "--results", str(root), *TINY]) == 0
    records = _records(root)
    assert set(records) == {"infonce", "pmrl"}
    infonce, pmrl = records["infonce"], records["pmrl"]
    assert len(infonce.trials) == len(pmrl.trials) == 3 and infonce.trials_requested == 3
    assert ((infonce.sampler, infonce.sampler_seed, infonce.trial_seed)
            == (pmrl.sampler, pmrl.sampler_seed, pmrl.trial_seed))
    assert infonce.context["budget"] == pmrl.context["budget"]  # steps, batch, dimension: one budget per trial
    # the learning rate and weight decay are drawn first, so trial k of every objective gets the same ones
    assert [t.params["budget"] for t in infonce.trials] == [t.params["budget"] for t in pmrl.trials]
    assert set(pmrl.trials[0].params["objective"]) == {"tau1", "tau2", "sign_fix"}
    assert set(infonce.trials[0].params["objective"]) == {"temperature", "label_smoothing"}
    assert len({t.params["budget"]["lr"] for t in infonce.trials}) == 3  # independent draws
    assert infonce.best is not None and infonce.best.value == max(t.value for t in infonce.trials)


def test_trial_0_trains_the_published_defaults_on_a_seed_no_test_run_uses(tmp_path, capsys, fresh_manager):
    from pmrl_bench.tuning.space import DEFAULT_TRIAL_SEED

    root = tmp_path / "results"
    assert main(["tune", "--objectives", "infonce,pmrl", "--trials", "3", "--results", str(root), *TINY]) == 0
    for name, record in _records(root).items():
        first = record.trials[0]
        assert first.published_defaults and not any(t.published_defaults for t in record.trials[1:])
        assert record.defaults_trial is first
        assert first.params["budget"] == {"lr": 1e-3, "weight_decay": 0.01}  # run's own defaults (TINY sets neither)
        declared = fresh_manager.registry.get("objective", name).parameters()
        assert first.params["objective"] == {k: declared[k].default for k in first.params["objective"]}
        assert record.best.value >= first.value  # tuned is never worse than default on validation
        assert record.trial_seed == DEFAULT_TRIAL_SEED

    # a tuned configuration is never tested on the seed its trials trained with
    assert main(["tune", "--objectives", "infonce", "--trials", "1", "--seed", "1", "--results", str(tmp_path / "b"),
                 *TINY]) == 0
    capsys.readouterr()
    assert main(["run", "--objectives", "infonce", "--seeds", "2", "--tuned", "--results", str(tmp_path / "b"),
                 *TINY]) == 2
    assert "seed 1 is the seed every trial of its study trained with" in capsys.readouterr().err
    assert ResultStore(tmp_path / "b").scan()[0] == []  # refused before any run trained


def test_a_study_whose_best_trial_came_in_its_last_fifth_is_still_improving():
    from pmrl_bench.tuning.records import TrialRecord, TunedParams

    def record(values):
        trials = [TrialRecord(number=i, value=v, status="ok", params={}) for i, v in enumerate(values)]
        return TunedParams(study="s", study_id="i", task="t", objective="o", protocol="scratch", context={},
                           context_id="c", space={}, metric="mean_R@1", sampler="random", sampler_seed=0,
                           trial_seed=1000, trials_requested=len(values), trials=trials,
                           best=max(trials, key=lambda t: (t.value, -t.number)))

    assert record([0.1] * 8 + [0.5, 0.2]).still_improving  # best at trial 8 of 10
    assert not record([0.1] * 7 + [0.5, 0.2, 0.3]).still_improving  # best at trial 7 of 10


def test_a_second_command_extends_nothing_and_more_trials_extend_the_study(tmp_path):
    root = tmp_path / "results"
    args = ["tune", "--objectives", "infonce", "--results", str(root), *TINY]
    assert main([*args, "--trials", "2"]) == 0
    first = _records(root)["infonce"]
    assert main([*args, "--trials", "2"]) == 0  # already done: no new trial
    assert [t.model_dump() for t in _records(root)["infonce"].trials] == [t.model_dump() for t in first.trials]
    assert main([*args, "--trials", "3"]) == 0
    extended = _records(root)["infonce"]
    assert len(extended.trials) == 3 and extended.trials[:2] == first.trials


def test_trials_draw_the_same_parameters_whatever_the_process(tmp_path):
    """Trial k samples with a generator seeded by (sampler seed, k): one process or two give the same draws."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["tune", "--objectives", "pmrl", "--trials", "3", "--results", str(a), *TINY]) == 0
    for n in (1, 2, 3):  # the same study grown one trial per command
        assert main(["tune", "--objectives", "pmrl", "--trials", str(n), "--results", str(b), *TINY]) == 0
    assert [t.params for t in _records(a)["pmrl"].trials] == [t.params for t in _records(b)["pmrl"].trials]


def test_run_tuned_trains_with_the_best_parameters_and_labels_them(tmp_path):
    root = tmp_path / "results"
    assert main(["tune", "--objectives", "infonce", "--trials", "2", "--results", str(root), *TINY]) == 0
    record = _records(root)["infonce"]
    assert main(["run", "--objectives", "infonce", "--seeds", "2", "--tuned", "--results", str(root),
                 "--leaderboard", str(tmp_path / "boards"), *TINY]) == 0
    results, problems = ResultStore(root).scan()
    assert not problems and len(results) == 2
    for result in results:
        assert result.tuning["trials"] == 2 and result.tuning["sampler"] == "random"
        assert result.params["budget"]["lr"] == record.best.params["budget"]["lr"]
        assert result.params["objective"]["temperature"] == record.best.params["objective"]["temperature"]
        assert result.tuning["file"].startswith("_tuning/synthetic/infonce/")


def test_run_tuned_without_a_matching_study_is_one_line(tmp_path, capsys):
    root = tmp_path / "results"
    assert main(["tune", "--objectives", "infonce", "--trials", "1", "--results", str(root), *TINY]) == 0
    capsys.readouterr()
    code = main(["run", "--objectives", "infonce", "--tuned", "--results", str(root), *TINY[:-1],
                 "--steps", "5", "--no-progress"])  # another budget than the study's
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert ("no tuned parameters for objective 'infonce' on task 'synthetic'" in err
            and "steps is 5 here, 4 in the study" in err)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--trials", "0"], "--trials must be between 1 and"),
        (["--trials", "2", "--metric", "accuracy"], "--metric 'accuracy' is not a metric"),
        (["--trials", "2", "--metric", "linear:nope"], "has no view 'nope'"),
        (["--trials", "2", "--sampler", "grid"], "invalid choice: 'grid'"),
        (["--trials", "2", "--storage", "nosuchdb://x"], "--storage 'nosuchdb://x': Optuna cannot open it"),
    ],
)
def test_bad_input_stops_before_any_trial(tmp_path, capsys, extra, message):
    root = tmp_path / "results"
    code = main(["tune", "--objectives", "infonce", "--results", str(root), *TINY, *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    assert not (root / "_tuning").exists() or not list((root / "_tuning").rglob("*.json"))


class _Scaled:
    """An objective with a declared space; ``scale`` must be positive."""

    def __new__(cls, scale: float = 1.0, hard: bool = False):
        from pmrl_bench.testing import reference_objective

        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        return reference_objective(0.1 * scale)


def test_a_space_that_cannot_be_sampled_stops_before_any_trial(tmp_path, capsys, pmrl_register_plugin):
    class Plugin:
        @hookimpl
        def register_objectives(self, register):
            register("bad-space", _Scaled, search_space={"scale": LogUniform(0.0, 1.0)})
            register("rejected-space", _Scaled,
                     search_space={"hard": Choice([False, True]), "scale": Choice([0.0, 1.0])})
            register("unknown-param", _Scaled, search_space={"nope": Choice([1, 2])})

    pmrl_register_plugin(Plugin())
    for name, message in (("bad-space", "LogUniform needs finite 0 < low < high"),
                          ("rejected-space", "cannot be sampled: scale=0.0 is rejected"),
                          ("unknown-param", "names 'nope', which is not one of its parameters")):
        code = main(["tune", "--objectives", name, "--trials", "2", "--results", str(tmp_path / name), *TINY])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and message in err, err
        assert not (tmp_path / name / "_tuning").exists()


def test_a_failing_trial_counts_and_scores_the_worst_value(tmp_path, pmrl_register_plugin):
    class Plugin:
        @hookimpl
        def register_objectives(self, register):
            # scale > 3 raises inside training (the factory accepts it; the forward does not): a failed trial
            register("fragile", _Fragile, search_space={"scale": LogUniform(0.5, 8.0)})

    pmrl_register_plugin(Plugin())
    root = tmp_path / "results"
    assert main(["tune", "--objectives", "fragile", "--trials", "6", "--results", str(root), *TINY]) == 0
    record = _records(root)["fragile"]
    assert len(record.trials) == 6
    failed = [t for t in record.trials if t.params["objective"]["scale"] > 3]
    assert failed and all(t.status == "failed" and t.value == 0.0 for t in failed)
    assert all(t.status == "ok" for t in record.trials if t.params["objective"]["scale"] <= 3)


class _Fragile:
    def __new__(cls, scale: float = 1.0):
        import torch

        from pmrl_bench.testing import reference_objective

        inner = reference_objective(0.1)

        class Fragile(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = inner

            def forward(self, embeddings):
                if scale > 3:
                    raise RuntimeError("scale too large for this toy")
                return self.inner(embeddings)

        return Fragile()


class _PoisonedInputs(dict):
    armed = False

    def __getitem__(self, key):
        if _PoisonedInputs.armed:
            raise AssertionError(f"the test split was read outside the final evaluation (modality {key!r})")
        return super().__getitem__(key)

    def values(self):
        if _PoisonedInputs.armed:
            raise AssertionError("the test split was read outside the final evaluation")
        return super().values()


class _PoisonedTask:
    def load(self) -> TaskData:
        rng = np.random.default_rng(0)
        shared = rng.standard_normal((200, 4))
        inputs = {m: (shared @ rng.standard_normal((4, 8)) + 0.1 * rng.standard_normal((200, 8))).astype(np.float32)
                  for m in ("a", "b", "c")}
        labels = (shared[:, 0] > 0).astype(np.int64)
        test = Split(_PoisonedInputs({m: x[150:] for m, x in inputs.items()}), labels[150:])
        return TaskData([Modality(m, VECTOR, (8,)) for m in inputs], Split({m: x[:150] for m, x in inputs.items()},
                        labels[:150]), test, num_classes=2)


@pytest.mark.slow
def test_trials_compute_no_robustness_views_and_runs_still_do(tmp_path, monkeypatch):
    from pmrl_bench.evaluation import suite

    computed = []
    original = suite.robustness_views
    monkeypatch.setattr(suite, "robustness_views",
                        lambda *args, **kwargs: computed.append(1) or original(*args, **kwargs))
    root = tmp_path / "results"
    assert main(["tune", "--objectives", "infonce", "--trials", "2", "--results", str(root), *TINY]) == 0
    assert computed == []  # a trial keeps one validation metric
    assert main(["run", "--objectives", "infonce", "--seeds", "1", "--results", str(root),
                 "--leaderboard", str(tmp_path / "boards"), *TINY]) == 0
    assert len(computed) == 1
    results, _ = ResultStore(root).scan()
    assert results[0].robustness and "noise" in results[0].robustness


def test_tune_never_reads_the_test_split(tmp_path, monkeypatch, pmrl_register_plugin):
    class Plugin:
        @hookimpl
        def register_tasks(self, register):
            register("poisoned", _PoisonedTask)

    pmrl_register_plugin(Plugin())
    from pmrl_bench.tuning import study

    original = study.run_studies

    def armed(*args, **kwargs):  # planning may check the test data; from the first trial on, nothing may read it
        _PoisonedInputs.armed = True
        try:
            return original(*args, **kwargs)
        finally:
            _PoisonedInputs.armed = False

    monkeypatch.setattr(study, "run_studies", armed)
    import pmrl_bench.cli  # noqa: F401 - _cmd_tune imports run_studies from the module at call time

    root = tmp_path / "results"
    assert main(["tune", "--objectives", "infonce", "--tasks", "poisoned", "--trials", "2", "--steps", "3",
                 "--batch-size", "16", "--dim", "8", "--metric", "linear:fused", "--no-progress",
                 "--results", str(root)]) == 0
    assert len(_records(root)["infonce"].trials) == 2
    assert all(t.status == "ok" for t in _records(root)["infonce"].trials)


@pytest.mark.slow
def test_kill_9_during_a_trial_then_the_same_command_ends_with_exactly_n_trials(tmp_path):
    import optuna

    root = tmp_path / "results"
    command = [sys.executable, "-m", "pmrl_bench", "tune", "--objectives", "infonce", "--trials", "3",
               "--results", str(root), *TINY[:-3], "--steps", "600", "--dim", "8", "--no-progress"]
    env = {**os.environ, "PMRL_BENCH_LOAD_PLUGINS": "", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    storage = f"sqlite:///{(root / '_tuning' / 'studies.db').resolve()}"
    deadline = time.time() + 120
    running = None
    while time.time() < deadline and running is None:  # wait until a trial is running
        time.sleep(0.3)
        try:
            for summary in optuna.get_all_study_summaries(storage):
                trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials(deepcopy=False)
                running = next((t for t in trials if t.state.name == "RUNNING" and t.params), None)  # sampled
        except Exception:  # the database is being created
            continue
    assert running is not None, process.stderr.read().decode() if process.poll() is not None else "no trial started"
    process.send_signal(signal.SIGKILL)
    process.wait()

    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)  # the same command
    assert finished.returncode == 0, finished.stderr
    trials = _study_trials(root, "infonce")
    killed = [t for t in trials if t.number == running.number]
    assert killed and killed[0].state.name == "FAIL"  # the dead trial is marked failed...
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 3  # ...and the study still ends with exactly N completed trials
    # Its parameters were retried: all those sampled before the kill (a kill between two suggestions leaves the
    # rest to be sampled by the retry).
    retries = [t for t in complete if t.user_attrs.get("retry_of") == running.number]
    assert len(retries) == 1 and killed[0].params.items() <= retries[0].params.items()


def test_the_contract_suite_checks_a_declared_search_space(pmrl_register_plugin):
    from pmrl_bench.plugins import get_registry
    from pmrl_bench.testing import ContractViolation, check_search_space

    class Plugin:
        @hookimpl
        def register_objectives(self, register):
            register("fine", _Scaled, search_space={"scale": LogUniform(0.5, 2.0), "hard": Choice([False, True])})
            register("unsampleable", _Scaled, search_space={"scale": LogUniform(2.0, 1.0)})
            register("rejects-corner", _Scaled, search_space={"scale": Choice([0.0, 1.0])})
            register("no-space", _Scaled)

    pmrl_register_plugin(Plugin())
    registry = get_registry()
    assert check_search_space(registry.get("objective", "fine")) is True
    assert check_search_space(registry.get("objective", "no-space")) is False
    with pytest.raises(ContractViolation, match="LogUniform needs finite 0 < low < high"):
        check_search_space(registry.get("objective", "unsampleable"))
    with pytest.raises(ContractViolation, match="scale=0.0 .* which the factory rejects"):
        check_search_space(registry.get("objective", "rejects-corner"))


@pytest.mark.slow
def test_tune_jobs_2_takes_the_same_trials_as_jobs_1(tmp_path):
    """Worker processes share the studies through their locks: N trials each, the same draws and scores."""
    one, two = tmp_path / "one", tmp_path / "two"
    args = ["tune", "--objectives", "infonce,pmrl", "--trials", "3", *TINY]
    assert main([*args, "--results", str(one)]) == 0
    assert main([*args, "--results", str(two), "--jobs", "2"]) == 0
    for objective in ("infonce", "pmrl"):
        a, b = _records(one)[objective], _records(two)[objective]
        assert len(b.trials) == 3
        assert [(t.number, t.params, t.value) for t in a.trials] == [(t.number, t.params, t.value) for t in b.trials]
