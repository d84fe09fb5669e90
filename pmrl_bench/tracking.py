"""Experiment tracking: reporters receive each run's training scalars as it trains and its result when it ends.

A plugin registers a reporter with the ``register_reporters`` hook; ``pmrl-bench run --log NAME`` switches it on.
The runner builds each named reporter once per sweep, then for every run it trains (not the runs already done):

* ``start_run(run)`` with a :class:`RunInfo` (ids, resolved parameters, and ``log_dir``, a directory of its own
  under ``RESULTS/_logs/<reporter>/<task>/<objective>/<config>-seed<N>/``);
* ``log_scalars(step, scalars)`` at the training loop's flush cadence (every 25 steps the buffered steps arrive in
  order): ``train/loss``, ``train/grad_norm`` (before clipping), ``train/term/<name>`` for each loss term, and at
  each probe of the validation batch (step 0, every 25 steps, the end) ``probe/sigma1_share`` and ``probe/R@1``;
* ``end_run(result)`` with the stored :class:`~pmrl_bench.results.RunResult` (``result_scalars`` flattens its
  test metrics);
* ``close()`` once, when the sweep ends or stops.

Step scalars travel through the training monitors (:class:`ScalarForwarder`), so the training loop knows nothing
of reporters. A reporter that raises is reported once on stderr and switched off for the rest of the sweep: a
tracking service that fails never fails a benchmark run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pmrl_bench.console import say
from pmrl_bench.errors import UnknownNameError, UsageError
from pmrl_bench.registry import Component
from pmrl_bench.results import RunResult
from pmrl_bench.runner.monitor import StepRecord
from pmrl_bench.runner.spec import RunSpec
from pmrl_bench.stability.tensors import to_cpu64
from pmrl_bench.stability.probe import ProbeMonitor
from pmrl_bench.evaluation.retrieval import mean_r1
from pmrl_bench.stability.singular import instance_stack, singular_value_stats

LOGS_DIR = "_logs"  # under the results directory; "_" directories hold no result files


@dataclass(frozen=True)
class RunInfo:
    """The run a reporter is told about in ``start_run``."""

    run_id: str  # "<task>/<objective>/<config_id>-seed<N>", as in the result file
    task: str
    objective: str
    config_id: str
    seed: int
    steps: int  # the training budget; ``end_run`` results belong to this step
    params: dict[str, Any]  # resolved parameters, as the result file records them
    log_dir: Path  # this reporter's directory for this run: absolute, and it exists


class Reporter:
    """Base class of reporters; every method is optional (a reporter may also be any object with some of them)."""

    def start_run(self, run: RunInfo) -> None:
        """A run starts training."""

    def log_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """Scalars of one training step (or probe), steps in non-decreasing order."""

    def end_run(self, result: RunResult) -> None:
        """The run ended (``ok``, ``diverged`` or ``failed``) and its result was stored."""

    def close(self) -> None:
        """The sweep ended or stopped."""


def result_scalars(result: RunResult) -> dict[str, float]:
    """A result's test metrics as flat tags: ``test/mean_R@1``, ``test/<metric>/<direction>`` per cosine direction,
    ``test/<probe>`` per classification probe (fractions; empty for a run that did not end ``ok``)."""
    retrieval = result.metrics.retrieval
    out: dict[str, float] = {}
    if retrieval:
        out["test/mean_R@1"] = float(np.mean([scores["R@1"] for scores in retrieval.values()]))
    for direction, scores in sorted(retrieval.items()):
        out.update({f"test/{metric}/{direction}": float(value) for metric, value in scores.items()})
    for probe, accuracy in sorted((result.metrics.classification or {}).items()):
        out[f"test/{probe}"] = float(accuracy)
    return out


class ScalarForwarder(ProbeMonitor):
    """The training monitor that hands step and probe scalars to ``sink``; it adds nothing to the result file."""

    name = "reporters"

    def __init__(self, sink: Callable[[int, dict[str, float]], None]) -> None:
        super().__init__()
        self.sink = sink

    def on_step(self, record: StepRecord) -> None:
        scalars = {"train/loss": record.loss, "train/grad_norm": record.grad_norm}
        scalars.update({f"train/term/{name}": value for name, value in record.terms.items()})
        self.sink(record.step, scalars)

    def observe(self, step: int, embeddings: Mapping[str, torch.Tensor]) -> None:
        share = singular_value_stats(instance_stack(to_cpu64(dict(embeddings))))["sigma1_share"]
        self.sink(step, {"probe/sigma1_share": share, "probe/R@1": mean_r1(embeddings)})

    def summary(self) -> None:  # type: ignore[override]
        return None


class SweepReporters:
    """The reporters of one sweep (``--log``), called by the runner; a failing reporter is dropped with a warning."""

    def __init__(self, reporters: Mapping[str, Any], results_dir: Path) -> None:
        self.reporters = dict(reporters)
        self.root = Path(results_dir).absolute() / LOGS_DIR  # a reporter may change directory (some services do)

    @classmethod
    def build(cls, names: Sequence[str], available: Mapping[str, Component], results_dir: Path) -> SweepReporters:
        """Build each named reporter (before anything trains): an unknown name or a reporter that cannot be set
        up is a usage error."""
        reporters = {}
        for name in dict.fromkeys(names):
            if name not in available:
                raise UnknownNameError("reporter in --log", name, available)
            try:
                reporters[name] = available[name].factory()
            except UsageError:
                raise
            except Exception as exc:  # noqa: BLE001 - a plugin's setup failure, in one line
                raise UsageError(f"reporter {name!r} could not be set up: {type(exc).__name__}: {exc}") from exc
        return cls(reporters, results_dir)

    def __bool__(self) -> bool:
        return bool(self.reporters)

    def start_run(self, spec: RunSpec) -> ScalarForwarder:
        """Tell every reporter a run starts; returns the monitor that forwards its training scalars."""
        for name in list(self.reporters):
            log_dir = self.root / name / spec.task / spec.objective / f"{spec.config_id}-seed{spec.seed}"
            info = RunInfo(spec.run_id, spec.task, spec.objective, spec.config_id, spec.seed, spec.budget.steps,
                           spec.params(), log_dir)
            self._call(name, "start_run", info, make_dir=log_dir)
        return ScalarForwarder(self.log_scalars)

    def log_scalars(self, step: int, scalars: dict[str, float]) -> None:
        for name in list(self.reporters):
            self._call(name, "log_scalars", step, scalars)

    def end_run(self, result: RunResult) -> None:
        for name in list(self.reporters):
            self._call(name, "end_run", result)

    def close(self) -> None:
        for name in list(self.reporters):
            self._call(name, "close")

    def _call(self, name: str, method: str, *args: Any, make_dir: Path | None = None) -> None:
        function = getattr(self.reporters[name], method, None)
        if not callable(function):
            return
        try:
            if make_dir is not None:
                make_dir.mkdir(parents=True, exist_ok=True)
            function(*args)
        except Exception as exc:  # noqa: BLE001 - tracking must not fail the benchmark
            del self.reporters[name]
            say(f"warning: reporter {name!r} failed in {method}: {type(exc).__name__}: {exc}; it is "
                "switched off for the rest of this sweep (the runs and their result files are unaffected)")


class ReporterOpener:
    """Opens the reporters ``--log`` names, once per process that trains: a picklable factory for the sweep.

    Built before anything trains, it opens them at once, so an unknown or broken reporter is bad input then; the
    first call in this process returns those, and a worker process (``--jobs``) opens its own.
    """

    def __init__(self, names: Sequence[str], available: Mapping[str, Component], results_dir: Path) -> None:
        self.names, self.available, self.results_dir = list(names), dict(available), Path(results_dir)
        self._opened: SweepReporters | None = SweepReporters.build(self.names, self.available, self.results_dir)

    def __call__(self) -> SweepReporters:
        opened, self._opened = self._opened, None
        return opened if opened is not None else SweepReporters.build(self.names, self.available, self.results_dir)

    def close_unused(self) -> None:
        """Close the reporters opened for the check when no run in this process took them."""
        if self._opened is not None:
            self._opened.close()
            self._opened = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_opened": None}  # a worker opens its own
