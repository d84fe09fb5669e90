"""Shared pieces of the reliability tests: a tiny sweep, in-process plugins with deliberate faults."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from pmrl_bench import hookimpl
from pmrl_bench.components import VECTOR, Modality, ObjectiveOutput, Split, TaskData
from pmrl_bench.results import ResultStore, RunResult

# A sweep small enough for tests: 256 training instances, 20 steps, the default encoders.
TINY = ["--tasks", "synthetic", "--set", "task.synthetic.n_train=256", "--set", "task.synthetic.n_test=128",
        "--batch-size", "32", "--device", "cpu", "--no-progress"]


def run_args(results: Path, leaderboards: Path, objectives: str = "infonce", seeds: int = 2,
             steps: int = 20) -> list[str]:
    return ["run", "--objectives", objectives, *TINY, "--steps", str(steps), "--seeds", str(seeds),
            "--results", str(results), "--leaderboard", str(leaderboards)]


def assert_complete(results: Path, expected: int) -> None:
    """Every result file is valid and in place, there are ``expected`` of them, and no temporary is left."""
    found, problems = ResultStore(results).scan()
    assert problems == [], problems
    assert len(found) == expected, sorted(r.run_id for r in found)
    leftovers = [p for p in results.rglob("*.tmp")]
    assert leftovers == [], leftovers


class AlignObjective(torch.nn.Module):
    """Mean cosine to the first modality: enough to train, with faults switched on by parameters."""

    faults_on = True  # a test sets this False to play "the plugin bug was fixed" with the same configuration

    def __init__(self, nan_at: int = 0, nan_grad_at: int = 0, raise_at: int = 0, exit_at: int = 0) -> None:
        super().__init__()
        self.nan_at, self.nan_grad_at, self.raise_at, self.exit_at = nan_at, nan_grad_at, raise_at, exit_at
        self.calls = 0

    def forward(self, embeddings):
        if torch.is_grad_enabled():  # count training steps only, not evaluation
            self.calls += 1
        first, *others = embeddings.values()
        loss = sum(1 - (first * z).sum(-1).mean() for z in others)
        if not self.faults_on:
            return ObjectiveOutput(loss=loss, terms={"align": loss.detach()})
        if self.calls == self.raise_at:
            raise RuntimeError(f"plugin bug at step {self.calls}")
        if self.calls == self.exit_at:
            raise SystemExit(3)
        if self.calls == self.nan_at:
            loss = loss * math.nan
        if self.calls == self.nan_grad_at:
            loss = loss + torch.sqrt(first[0, 0] * 0.0)  # finite value (0), infinite gradient d sqrt(x)/dx at 0
        return ObjectiveOutput(loss=loss, terms={"align": loss.detach()})


class FaultyObjectives:
    """Registers ``align`` (with fault switches), ``broken-factory`` and ``unstorable``."""

    @hookimpl
    def register_objectives(self, register):
        register("align", AlignObjective)
        register("broken-factory", _broken_factory)


def _broken_factory():
    raise RuntimeError("the factory itself is broken")


class BadTask:
    """A task whose data has one deliberate defect (``defect``), or reads a file (``path``)."""

    def __init__(self, defect: str = "none", path: str = "") -> None:
        self.defect, self.path = defect, path

    def load(self) -> TaskData:
        if self.path:
            np.load(self.path, allow_pickle=False)  # a missing file raises FileNotFoundError here
        if self.defect == "raise":
            raise RuntimeError("the loader has a bug")
        rng = np.random.default_rng(0)
        n, d = 64, 8
        a = rng.standard_normal((n, d)).astype(np.float32)
        b = rng.standard_normal((n, d)).astype(np.float32)
        labels = np.arange(n) % 4
        modalities = [Modality("a", VECTOR, (d,)), Modality("b", VECTOR, (d,))]
        if self.defect == "lengths":
            b = b[:-3]
        elif self.defect == "nan":
            a[5, 2] = np.nan
        elif self.defect == "dims":
            b = rng.standard_normal((n, d + 1)).astype(np.float32)
        elif self.defect == "labels":
            labels = labels[:-1]
        elif self.defect == "one-modality":
            modalities = modalities[:1]
        split = Split({"a": a, "b": b}, labels)
        return TaskData(modalities, split, Split({"a": a.copy(), "b": b.copy()}, labels.copy()), num_classes=4)


class BadTasks:
    @hookimpl
    def register_tasks(self, register):
        register("bad", BadTask)


def text_result(text: str, seed: int, value: str) -> RunResult:
    """A valid result of task ``t`` whose free-text fields (a parameter value, direction and probe names) hold
    ``text``; written without training, for the commands that read results."""
    from pmrl_bench.evaluation.per_query import encode_ranks

    scores = {"R@1": 0.4 + 0.1 * seed, "R@5": 0.7, "R@10": 0.8, "MdR": 2.0}
    directions = (f"{text}->m1", f"m1->{text}")
    return RunResult(
        run_id=f"t/obj/{value}-seed{seed}", config_id=value, task="t", objective="obj",
        params={"objective": {"mode": f"{text} {value}"}, "task": {}, "encoders": {}, "budget": {"steps": 10}},
        seed=seed, status="ok",
        metrics={"retrieval": {d: scores for d in directions},
                 "per_query_ranks": {"retrieval": {d: encode_ranks(np.arange(1, 9)) for d in directions}},
                 "classification": {f"linear:{text}": 0.5}},
        versions={"torch": "2", "pmrl_bench": "0.1.0", "plugins": {}}, device="cpu", command=f"run {text}",
    )


def text_results(root: Path, text: str) -> Path:
    """Two configurations of two seeds each (:func:`text_result`) under ``root``."""
    store = ResultStore(root)
    for seed in range(2):
        for value in ("v1", "v2"):
            store.write(text_result(text, seed, value))
    return root


def one_error_line(capsys, code: int, expected: int = 2) -> str:
    """The command's stderr, asserted to be one ``pmrl-bench: error:`` line (no traceback) with exit ``expected``."""
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == expected, (captured.out, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("pmrl-bench: error: "), err
    return err
