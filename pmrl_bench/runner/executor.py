"""One attempt of one run: claim it, train and evaluate it, store its result, and report what happened.

:class:`RunExecutor` is the runner's core. The serial sweep (``runner.sweep``) and every worker process of a
parallel one (``runner.parallel``) call :meth:`RunExecutor.attempt` for each run and fold the
:class:`~pmrl_bench.runner.summary.RunReport` it returns. The executor knows nothing of stability metrics or
experiment tracking: the caller hands it the monitors each run gets and, optionally, reporters.
"""

from __future__ import annotations

import datetime as dt
import platform
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol

import torch
from filelock import Timeout

from pmrl_bench.console import say
from pmrl_bench._version import __version__
from pmrl_bench.device import autocast_dtype, cpu_facts, describe, synchronize
from pmrl_bench.errors import SaveFailed
from pmrl_bench.redact import mask_secrets
from pmrl_bench.registry import Registry
from pmrl_bench.results import ResultStore, RunResult
from pmrl_bench.results.schema import NOT_APPLICABLE
from pmrl_bench.runner.distributed import SINGLE_PROCESS, DistributedContext, broadcast
from pmrl_bench.runner.init_stage import InitStageFailed, InitStages
from pmrl_bench.runner.monitor import TrainingMonitor
from pmrl_bench.runner.spec import RunSpec
from pmrl_bench.runner.start_state import StartEvaluations
from pmrl_bench.runner.summary import RunReport
from pmrl_bench.runner.sweep_plan import SweepConfig, SweepPlan
from pmrl_bench.runner.seed_batch import SeedBatchLoop, batchable_reason
from pmrl_bench.runner.train import RunOutcome, TrainOptions, outcome_of, train_and_evaluate

MonitorFactory = Callable[[], Sequence[TrainingMonitor]]


class RunReporters(Protocol):
    """What the executor needs of experiment tracking (``pmrl_bench.tracking.SweepReporters`` is one)."""

    def start_run(self, spec: RunSpec) -> TrainingMonitor:
        """A run starts training; the monitor returned forwards its training scalars."""

    def end_run(self, result: RunResult) -> None:
        """The run's result was stored."""

    def close(self) -> None:
        """The sweep (or this worker's share of it) ended."""


class ResultWriteError(SaveFailed):
    """A result could not be written to disk (full, read-only, removed): the sweep stops (exit status 1)."""


def collect_versions(plugin_versions: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Versions of what produced a result. ``plugins`` is narrowed per run to the plugins that run used."""
    def installed(dist: str) -> str | None:
        try:
            return version(dist)
        except PackageNotFoundError:
            return None

    return {
        "pmrl_bench": __version__,
        "python": platform.python_version(),
        "torch": installed("torch"),
        "numpy": installed("numpy"),
        "scikit-learn": installed("scikit-learn"),
        "plugins": dict(sorted((plugin_versions or {}).items())),
    }


class RunExecutor:
    """Claims, trains, evaluates and stores one run at a time; :meth:`attempt` reports what it did.

    Runs are claimed with an OS file lock before they train, so concurrent sweeps (and the workers of one) share
    the work; a result is written atomically only after its run finished. A stored ``failed`` result is retried
    (it records an error, not a measurement); ``ok`` and ``diverged`` are kept unless ``config.rerun``.
    """

    def __init__(
        self,
        plan: SweepPlan,
        config: SweepConfig,
        registry: Registry,
        store: ResultStore,
        versions: dict[str, Any],
        monitor_factory: MonitorFactory,
        device: torch.device,
        world: DistributedContext = SINGLE_PROCESS,
        reporters: RunReporters | None = None,
        started: float | None = None,  # the sweep's start: a result written after it by another process is done
        announced: Iterable[str] = (),  # runs already announced as retrained on changed data
    ) -> None:
        self.plan, self.config, self.registry, self.store = plan, config, registry, store
        self.versions, self.monitor_factory, self.device = versions, monitor_factory, device
        self.world = world
        self.reporters = reporters if world.is_main else None  # rank 0 reports, as it writes results
        self.started = time.time() if started is None else started
        self.announced = list(announced)
        self.announced_now: list[str] = []  # announced during the current attempt
        self.written: set[Path] = set()  # results this executor wrote
        self.running: list[str] = []  # the runs training right now (several when seeds train as one model)
        self.said: set[str] = set()  # lines already printed (why seeds train one after another)
        self.inits = InitStages(store, registry, device, plan.fingerprints, config.precision, config.progress, world)
        self.start_evaluations = StartEvaluations(plan.fingerprints)  # the runs of a seed share their starting state

    # -- whether a run is done ---------------------------------------------------------------------------------
    def reusable(self, spec: RunSpec) -> RunResult | None:
        """A stored result that counts as this run being done, or None if the run must (re)train."""
        found = self.store.existing(spec.task, spec.objective, spec.config_id, spec.seed)
        if found is None:
            return None
        path = self.store.path_for(spec.task, spec.objective, spec.config_id, spec.seed)
        by_another = path not in self.written and _mtime(path) >= self.started
        if by_another:  # a concurrent sweep finished it while we ran: never do it twice, even with --rerun
            return found
        if self.config.rerun or found.status in ("failed", NOT_APPLICABLE):  # an error, or a decision made again
            return None
        fingerprint = self.plan.fingerprints.get(spec.task)
        if fingerprint is not None and found.data_fingerprint != fingerprint:  # same parameters, other data
            if spec.run_id not in self.announced:
                self.announced.append(spec.run_id)
                self.announced_now.append(spec.run_id)
                say(f"retraining {spec.run_id}: the task's data changed since it ran (data fingerprint "
                    f"{found.data_fingerprint or 'not recorded'} -> {fingerprint})")
            return None
        return found

    def done(self, spec: RunSpec) -> RunReport | None:
        """The report of a run that is already done (nothing trains), or None when it must train."""
        found = self.reusable(spec)
        return None if found is None else RunReport(spec.run_id, reused=found.status)

    # -- one attempt ---------------------------------------------------------------------------------------------
    def attempt(self, spec: RunSpec, *, wait: bool) -> RunReport | None:
        """Run ``spec`` unless it is done; None when another process holds its claim and ``wait`` is False."""
        self.announced_now = []
        inits_before = (len(self.inits.trained), len(self.inits.reused))
        if self.world.enabled:
            report = self._attempt_in_lockstep(spec)
        else:
            report = self._attempt_claimed(spec, wait)
        if report is not None:
            report.retrained = list(self.announced_now)
            report.init_trained = self.inits.trained[inits_before[0]:]
            report.init_reused = self.inits.reused[inits_before[1]:]
        return report

    def attempt_seeds(self, specs: Sequence[RunSpec], *, wait: bool) -> tuple[list[RunReport], list[RunSpec]]:
        """Attempt runs of one configuration that differ only in their seed: trained as one model where their
        components allow it (:mod:`pmrl_bench.runner.seed_batch`), else one after another. Returns the reports of
        the runs attempted and the runs another process holds (left for later when ``wait`` is False)."""
        if len(specs) == 1 or self.world.enabled:
            reports, deferred = [], []
            for spec in specs:
                report = self.attempt(spec, wait=wait)
                reports.append(report) if report is not None else deferred.append(spec)
            return reports, deferred
        self.announced_now = []
        inits_before = (len(self.inits.trained), len(self.inits.reused))
        reports, deferred, todo, claims = [], [], [], []
        try:
            for spec in specs:
                report = self.done(spec)
                if report is None:
                    claim = self.store.claim(spec.task, spec.objective, spec.config_id, spec.seed)
                    try:
                        claim.acquire(timeout=-1 if wait else 0)
                    except Timeout:
                        deferred.append(spec)
                        continue
                    claims.append(claim)
                    report = self.done(spec)  # finished by another process between our check and our claim
                if report is not None:
                    reports.append(report)
                    continue
                self.store.remove_temporaries(spec.task, spec.objective, spec.config_id, spec.seed)
                todo.append(spec)
            reports += self._run_seeds(todo)
        finally:
            for claim in claims:
                claim.release()
        if reports:  # what the group as a whole did is told once, with its first report
            reports[0].retrained = list(self.announced_now)
            reports[0].init_trained = self.inits.trained[inits_before[0]:]
            reports[0].init_reused = self.inits.reused[inits_before[1]:]
        return reports, deferred

    def _run_seeds(self, specs: list[RunSpec]) -> list[RunReport]:
        if len(specs) < 2 or (specs[0].task, specs[0].objective) in self.plan.not_applicable:  # nothing to train
            return [self._run(spec) for spec in specs]
        data = self.plan.data[specs[0].task]
        reason = batchable_reason(specs[0], data, self.registry, self._options())
        if reason is not None:
            self._say_once(f"the seeds of {specs[0].task}/{specs[0].objective} train one after another: {reason}")
            return [self._run(spec) for spec in specs]
        starts, reports, batch = {}, [], []
        for spec in specs:  # a seed whose init stage fails is recorded as failed; the others train together
            try:
                starts[spec.run_id] = self.inits.starting_state(spec, data)
                batch.append(spec)
            except InitStageFailed as exc:
                reports.append(self._finish(spec, RunOutcome("failed", error=str(exc)), time.perf_counter(), None))
        if len(batch) < 2:
            return reports + [self._run(spec) for spec in batch]
        return reports + self._train_seed_batch(batch, data, starts)

    def _train_seed_batch(self, specs: list[RunSpec], data: Any,
                          starts: dict[str, tuple[Any, dict[str, Any] | None]]) -> list[RunReport]:
        options = [self._options(self._monitors(spec), starts[spec.run_id][0]) for spec in specs]
        started = time.perf_counter()
        self.running = [spec.run_id for spec in specs]
        try:
            trained = SeedBatchLoop(specs, data, self.registry, options).run()
        except (Exception, SystemExit) as exc:  # a component that declared support wrongly: train them alone
            self._say_once(f"the seeds of {specs[0].task}/{specs[0].objective} could not train as one model "
                           f"({describe_exception(exc)}); they train one after another")
            return [self._run(spec) for spec in specs]
        shared = (time.perf_counter() - started) / len(specs)  # each run's share of the training time
        reports = []
        for spec, run, opts in zip(specs, trained, options):
            run_started = time.perf_counter() - shared
            try:
                outcome = outcome_of(run, spec, data, opts, start_evaluations=self.start_evaluations)
                synchronize(self.device)
            except (Exception, SystemExit) as exc:  # a broken plugin fails its own run only
                outcome = RunOutcome("failed", error=describe_exception(exc))
            reports.append(self._finish(spec, outcome, run_started, starts[spec.run_id][1]))
            self.running.remove(spec.run_id)
        return reports

    def _say_once(self, line: str) -> None:
        if line not in self.said:
            self.said.add(line)
            say(line)

    def _attempt_claimed(self, spec: RunSpec, wait: bool) -> RunReport | None:
        report = self.done(spec)
        if report is not None:
            return report
        claim = self.store.claim(spec.task, spec.objective, spec.config_id, spec.seed)
        try:
            claim.acquire(timeout=-1 if wait else 0)
        except Timeout:
            return None
        try:
            report = self.done(spec)  # finished by another process between our check and our claim
            if report is not None:
                return report
            self.store.remove_temporaries(spec.task, spec.objective, spec.config_id, spec.seed)
            return self._run(spec)
        finally:
            claim.release()

    def _attempt_in_lockstep(self, spec: RunSpec) -> RunReport:
        """Under torchrun all ranks must train the same runs: rank 0 claims (waiting if needed) and decides."""
        if not self.world.is_main:
            return self._run(spec) if broadcast(None, self.world) else RunReport(spec.run_id, reused="ok")
        with self.store.claim(spec.task, spec.objective, spec.config_id, spec.seed):
            report = self.done(spec)
            broadcast(report is None, self.world)
            if report is not None:
                return report
            self.store.remove_temporaries(spec.task, spec.objective, spec.config_id, spec.seed)
            return self._run(spec)

    def _run(self, spec: RunSpec) -> RunReport:
        self.running = [spec.run_id]
        started = time.perf_counter()
        reason = self.plan.not_applicable.get((spec.task, spec.objective))
        if reason is None:
            outcome, init_record = self._train(spec)
        else:  # nothing trains: the result records why, and the pages show the run with dashes
            outcome, init_record = RunOutcome(NOT_APPLICABLE, error=reason), None
        self.running = []
        return self._finish(spec, outcome, started, init_record)

    def _finish(self, spec: RunSpec, outcome: RunOutcome, started: float,
                init_record: dict[str, Any] | None) -> RunReport:
        """Store a run's result (rank 0 only) and report it."""
        report = RunReport(spec.run_id, ran=outcome.status)
        if not self.world.is_main:  # rank 0 writes the result; the other ranks only helped train
            return report
        result, path = self._store(spec, outcome, started, init_record)
        self.written.add(path)
        report.written.append(path)
        report.ran = result.status
        if self.reporters and result.status != NOT_APPLICABLE:  # trackers hear of runs that trained
            self.reporters.end_run(result)
        return report

    def _monitors(self, spec: RunSpec) -> list[TrainingMonitor]:
        monitors = list(self.monitor_factory())
        if self.reporters:  # training scalars reach the reporters through one more monitor
            monitors.append(self.reporters.start_run(spec))
        return monitors

    def _options(self, monitors: Sequence[TrainingMonitor] = (), init_state: Any = None) -> TrainOptions:
        return TrainOptions(device=self.device, monitors=monitors, probe_every=self.config.probe_every,
                            progress=self.config.progress, precision=self.config.precision, world=self.world,
                            init_state=init_state, compiled=self.config.compile)

    def _train(self, spec: RunSpec) -> tuple[RunOutcome, dict[str, Any] | None]:
        init_record = None
        monitors = self._monitors(spec)
        try:
            data = self.plan.data[spec.task]
            init_state, init_record = self.inits.starting_state(spec, data)
            outcome = train_and_evaluate(spec, data, self.registry, self._options(monitors, init_state),
                                         start_evaluations=self.start_evaluations)
            synchronize(self.device)  # duration_s must count finished kernels, not launched ones
        except SaveFailed:  # the disk refused an init stage: the environment's fault, never a failed run
            raise
        except InitStageFailed as exc:  # every run of this seed needs the stage: each is recorded as failed
            outcome = RunOutcome("failed", error=str(exc))
        except (Exception, SystemExit) as exc:  # a broken objective or plugin fails its own run only
            outcome = RunOutcome("failed", error=describe_exception(exc))
        return outcome, init_record

    def _store(self, spec: RunSpec, outcome: RunOutcome, started: float,
               init_record: dict[str, Any] | None) -> tuple[RunResult, Path]:
        try:
            result = self.result(spec, outcome, started, init_record)
            return result, self.store.write(result)
        except OSError as exc:  # the disk, not the run: stopping is the only honest option
            raise ResultWriteError(
                f"cannot write the result of {spec.run_id} under {self.store.root}: {exc.strerror or exc}"
            ) from None
        except (ValueError, TypeError) as exc:  # a plugin produced metrics the schema cannot hold
            error = f"result could not be stored: {describe_exception(exc)}"
            result = self.result(spec, RunOutcome("failed", stability={}, error=error), started, init_record)
            return result, self.store.write(result)

    def result(self, spec: RunSpec, outcome: RunOutcome, started: float,
               init: dict[str, Any] | None = None) -> RunResult:
        """The result file of ``spec`` for ``outcome``."""
        selection = outcome.selection or {"rule": spec.selection, "step": None}
        return RunResult(
            run_id=spec.run_id,
            config_id=spec.config_id,
            task=spec.task,
            objective=spec.objective,
            params=spec.params(),
            seed=spec.seed,
            status=outcome.status,
            metrics=outcome.metrics,
            stability=outcome.stability,
            versions={**self.versions, "plugins": self._plugins_used(spec)},
            device=describe(self.device, autocast_dtype(self.device, self.config.precision), self.config.compile,
                            self.config.threads),
            cpu=cpu_facts(),
            error=outcome.error,
            diverged_step=outcome.diverged_step,
            duration_s=round(time.perf_counter() - started, 3),
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            command=self.config.command,
            protocol=spec.protocol.name,
            init=init or None,
            selection=selection,
            splits=self.plan.splits.get(spec.task),
            data_fingerprint=self.plan.fingerprints.get(spec.task),
            data_card=self.plan.cards.get(spec.task),
            metrics_at_init=outcome.metrics_at_init,
            tuning=spec.tuning,
            robustness=outcome.robustness,
            cost=outcome.cost,
        )

    def _plugins_used(self, spec: RunSpec) -> dict[str, str | None]:
        """``{distribution: version}`` of the external plugins whose components this run used (built-ins are
        covered by the pmrl_bench version), so a leaderboard header names only plugins that shaped its numbers."""
        objective = self.registry.get("objective", spec.objective)
        components = [objective, *getattr(objective, "part_components", ()), self.registry.get("task", spec.task)]
        components += [self.registry.get("encoder", choice.name) for choice in spec.encoders.values()]
        used = {(c.distribution or c.plugin): c.version for c in components if c.distribution != "pmrl-bench"}
        return dict(sorted(used.items()))


def describe_exception(exc: BaseException) -> str:
    """``Type: message (at file.py:line)``: a failed run's error, in one line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return mask_secrets(f"{type(exc).__name__}: {exc}{where}")  # result files are public: no URL passwords


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
