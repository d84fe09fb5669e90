"""Protocols: warm start (once per seed, cached, identical starting weights), user checkpoints, --select best,
the score at step 0, and a test split that nothing but the final evaluation reads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pmrl_bench import hookimpl
from pmrl_bench.cli import main
from pmrl_bench.components import VECTOR, Modality, Split, TaskData
from pmrl_bench.results import ResultStore
from pmrl_bench.runner import checkpoints
from pmrl_bench.runner import executor
from pmrl_bench.runner import train as train_module

TINY = ["--tasks", "synthetic", "--set", "task.synthetic.n_train=200", "--set", "task.synthetic.n_test=100",
        "--batch-size", "32", "--dim", "8", "--no-progress"]


def _run(tmp_path, *extra: str) -> int:
    return main(["run", "--results", str(tmp_path / "results"), "--leaderboard", str(tmp_path / "boards"),
                 *TINY, *extra])


@pytest.fixture
def starting_hashes(monkeypatch):
    """(objective, seed) -> SHA-256 of the encoder weights each run was handed."""
    seen: dict[tuple[str, int], str | None] = {}
    original = executor.train_and_evaluate

    def spy(spec, data, registry, options, **kwargs):
        state = options.init_state
        seen[(spec.objective, spec.seed)] = None if state is None else checkpoints.tensors_sha256(state)
        return original(spec, data, registry, options, **kwargs)

    monkeypatch.setattr(executor, "train_and_evaluate", spy)  # the name the executor calls
    return seen


@pytest.mark.slow
def test_warm_start_trains_each_init_stage_once_and_every_objective_starts_from_it(tmp_path, capsys, starting_hashes):
    args = ["--objectives", "pmrl,infonce,gram,anchor", "--seeds", "2", "--init", "infonce:20", "--steps", "10",
            "--lr", "1e-4"]
    assert _run(tmp_path, *args) == 0
    assert "init stages: 2 trained, 0 reused" in capsys.readouterr().out
    for seed in (0, 1):  # bit-identical starting weights for every objective of a seed
        assert len({starting_hashes[(o, seed)] for o in ("pmrl", "infonce", "gram", "anchor")}) == 1
    assert starting_hashes[("pmrl", 0)] != starting_hashes[("pmrl", 1)]
    results, problems = ResultStore(tmp_path / "results").scan()
    assert not problems and len(results) == 8
    for r in results:
        assert r.protocol == "warm:infonce:20" and r.init["sha256"] == starting_hashes[(r.objective, r.seed)]
        assert (r.params["protocol"]["init"]["budget"]["lr"] == 1e-4
                and r.params["protocol"]["init"]["budget"]["steps"] == 20)
        assert r.splits.model_dump() == {"train": 170, "val": 30, "test": 100}
    # the score at step 0 is the init stage's: the same for every objective of a seed
    for seed in (0, 1):
        at_init = [r.metrics_at_init.retrieval for r in results if r.seed == seed]
        assert all(a == at_init[0] for a in at_init)

    starting_hashes.clear()
    assert _run(tmp_path, *args, "--rerun") == 0  # the same command again trains no init stage
    assert "init stages: 0 trained, 2 reused" in capsys.readouterr().out
    assert _run(tmp_path, *args[:-4], "--init", "infonce:21", "--steps", "10", "--lr", "1e-4") == 0
    assert "init stages: 2 trained" in capsys.readouterr().out  # another init budget is another stage


@pytest.mark.slow
def test_a_damaged_init_checkpoint_is_retrained(tmp_path, capsys):
    args = ["--objectives", "infonce", "--seeds", "1", "--init", "infonce:5", "--steps", "5"]
    assert _run(tmp_path, *args) == 0
    (stage,) = (tmp_path / "results" / "_init" / "synthetic").glob("*.safetensors")
    state, metadata = checkpoints.read(stage)
    state = {k: v + 1 for k, v in state.items()}  # other weights under the same name: the hash no longer matches
    checkpoints.write(stage, state, metadata)
    capsys.readouterr()
    assert _run(tmp_path, *args, "--rerun") == 0
    captured = capsys.readouterr()
    assert "retraining init stage" in captured.err and "init stages: 1 trained" in captured.out


@pytest.mark.slow
def test_a_warm_checkpoint_reproduces_the_init_rows_step_0_metrics_through_init_checkpoint(tmp_path):
    assert _run(tmp_path, "--objectives", "infonce", "--seeds", "1", "--init", "infonce:15", "--steps", "5") == 0
    (warm,) = ResultStore(tmp_path / "results").scan()[0]
    (stage,) = (tmp_path / "results" / "_init" / "synthetic").glob("*.safetensors")
    other = tmp_path / "other"
    assert main(["run", "--results", str(other / "results"), "--leaderboard", str(other / "boards"), *TINY,
                 "--objectives", "infonce", "--seeds", "1", "--steps", "5", "--init-checkpoint", str(stage)]) == 0
    (from_file,) = ResultStore(other / "results").scan()[0]
    assert from_file.protocol == f"checkpoint:{warm.init['sha256'][:12]}"
    assert from_file.metrics_at_init.retrieval == warm.metrics_at_init.retrieval
    assert from_file.metrics_at_init.classification == warm.metrics_at_init.classification


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("missing", "missing key 'm0.net.1.weight'"),
        ("extra", "unexpected key 'm9.weight'"),
        ("shape", "key 'm0.net.1.weight' has shape [3, 32], the encoder expects"),
        ("pickle", "not a readable safetensors file"),
        ("absent", "no such file"),
    ],
)
@pytest.mark.slow
def test_a_checkpoint_that_does_not_fit_stops_before_training_with_one_line(tmp_path, capsys, change, message):
    assert _run(tmp_path, "--objectives", "infonce", "--seeds", "1", "--init", "infonce:2", "--steps", "2") == 0
    (stage,) = (tmp_path / "results" / "_init" / "synthetic").glob("*.safetensors")
    state, _ = checkpoints.read(stage)
    bad = tmp_path / "bad.safetensors"
    if change == "missing":
        state.pop("m0.net.1.weight")
    elif change == "extra":
        state["m9.weight"] = torch.zeros(2)
    elif change == "shape":
        state["m0.net.1.weight"] = torch.zeros(3, 32)
    if change == "pickle":
        torch.save(state, bad)
    elif change != "absent":
        checkpoints.write(bad, state, {})
    capsys.readouterr()
    before = sorted(p.name for p in (tmp_path / "results").rglob("*.json"))
    code = main(["run", "--results", str(tmp_path / "results"), "--leaderboard", str(tmp_path / "boards"), *TINY,
                 "--objectives", "infonce", "--seeds", "1", "--steps", "2", "--init-checkpoint", str(bad)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "results").rglob("*.json")) == before  # nothing trained, nothing lost


@pytest.mark.slow
def test_select_best_records_the_step_it_kept(tmp_path):
    assert _run(tmp_path, "--objectives", "infonce", "--seeds", "1", "--steps", "60", "--select", "best") == 0
    (result,) = ResultStore(tmp_path / "results").scan()[0]
    assert result.selection.rule == "best" and result.selection.step in (25, 50, 60)
    assert result.selection.metric == "validation mean_R@1" and 0 <= result.selection.value <= 1
    assert result.params["selection"]["rule"] == "best"
    assert _run(tmp_path, "--objectives", "infonce", "--seeds", "1", "--steps", "60") == 0
    last = next(r for r in ResultStore(tmp_path / "results").scan()[0] if r.selection.rule == "last")
    assert last.selection.step == 60 and last.config_id != result.config_id


class _PoisonedInputs(dict):
    armed = False

    def _check(self) -> None:
        if _PoisonedInputs.armed:
            raise AssertionError("the test split was read before the final evaluation")

    def __getitem__(self, key):
        self._check()
        return super().__getitem__(key)

    def values(self):
        self._check()
        return super().values()

    def items(self):
        self._check()
        return super().items()


class _PoisonedTask:
    def load(self) -> TaskData:
        rng = np.random.default_rng(0)
        shared = rng.standard_normal((200, 4))
        inputs = {m: (shared @ rng.standard_normal((4, 8)) + 0.1 * rng.standard_normal((200, 8))).astype(np.float32)
                  for m in ("a", "b", "c")}
        labels = (shared[:, 0] > 0).astype(np.int64)
        return TaskData([Modality(m, VECTOR, (8,)) for m in inputs],
                        Split({m: x[:150] for m, x in inputs.items()}, labels[:150]),
                        Split(_PoisonedInputs({m: x[150:] for m, x in inputs.items()}), labels[150:]), num_classes=2)


@pytest.mark.parametrize("selection", ["last", "best"])
@pytest.mark.slow
def test_the_test_split_is_untouched_before_the_final_evaluation(tmp_path, monkeypatch, pmrl_register_plugin,
                                                                 selection):
    class Plugin:
        @hookimpl
        def register_tasks(self, register):
            register("poisoned", _PoisonedTask)

    pmrl_register_plugin(Plugin())
    from pmrl_bench.evaluation import suite

    original_train = train_module.train
    evaluated: list[str] = []

    def armed_train(*args, **kwargs):  # from the first step on, only the final evaluation may read test
        _PoisonedInputs.armed = True
        return original_train(*args, **kwargs)

    def final_evaluation(original):
        def evaluation(*args, **kwargs):
            split = args[5] if len(args) > 5 else kwargs.get("split", "test")
            evaluated.append(split)
            _PoisonedInputs.armed = split != "test"
            try:
                return original(*args, **kwargs)
            finally:
                _PoisonedInputs.armed = True

        return evaluation

    monkeypatch.setattr(train_module, "train", armed_train)
    # the final evaluations, each with its split sixth: nothing else may read test
    for name in ("evaluate", "evaluate_with_robustness", "evaluate_native"):
        assert getattr(train_module, name) is getattr(suite, name)
        monkeypatch.setattr(train_module, name, final_evaluation(getattr(suite, name)))
    try:
        code = main(["run", "--objectives", "infonce,pmrl", "--tasks", "poisoned", "--seeds", "1", "--steps", "30",
                     "--batch-size", "16", "--dim", "8", "--select", selection, "--no-progress",
                     "--init", "infonce:10", "--results", str(tmp_path / "results"),
                     "--leaderboard", str(tmp_path / "boards")])
    finally:
        _PoisonedInputs.armed = False
    assert code == 0
    results, _ = ResultStore(tmp_path / "results").scan()
    assert len(results) == 2 and all(r.status == "ok" for r in results)
    # all at the end: per run the kept state and the starting state's native view, and once the starting state
    # the two runs share
    assert evaluated == ["test"] * 5
