"""Execute a planned sweep run by run: claim, train, evaluate, store; resumable, shareable, interruptible."""

from __future__ import annotations

import datetime as dt
import platform
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import Timeout
from tqdm.auto import tqdm

from pmrl_bench.errors import Interrupted, PmrlBenchError, UsageError
from pmrl_bench.registry import Registry
from pmrl_bench.results import ResultStore, RunResult
from pmrl_bench.runner.plan import SweepConfig, SweepPlan
from pmrl_bench.runner.spec import RunSpec

if TYPE_CHECKING:
    from pmrl_bench.reporting import SweepReporters


@dataclass
class SweepSummary:
    """Counts of one sweep: ok/diverged/failed were run here; ``skipped`` were already done (``reused`` by status)."""

    ok: int = 0
    diverged: int = 0
    failed: int = 0
    skipped: int = 0
    written: list[Path] = field(default_factory=list)
    planned: int = 0
    reused: dict[str, int] = field(default_factory=dict)
    init_trained: int = 0  # warm-start stages trained by this sweep
    init_reused: int = 0
    retrained: list[str] = field(default_factory=list)  # runs whose stored result was for other data
    lost: list[str] = field(default_factory=list)  # runs whose worker process died (--jobs); the next run trains them

    @property
    def all_ok(self) -> bool:
        # A resumed sweep reports what an uninterrupted one would: a kept diverged result still counts.
        return self.diverged_total == 0 and self.failed_total == 0 and not self.lost

    @property
    def diverged_total(self) -> int:
        return self.diverged + self.reused.get("diverged", 0)

    @property
    def failed_total(self) -> int:  # a failed result is reused only when a concurrent sweep just wrote it
        return self.failed + self.reused.get("failed", 0)

    @property
    def skipped_note(self) -> str:
        """`` (1 diverged)`` when results that were already done include diverged (or failed) ones, else empty."""
        notes = [f"{self.reused[s]} {s}" for s in ("diverged", "failed") if self.reused.get(s)]
        return f" ({', '.join(notes)})" if notes else ""


def collect_versions(plugin_versions: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Versions of what produced a result. ``plugins`` is narrowed per run to the plugins that run used."""
    def installed(dist: str) -> str | None:
        try:
            return version(dist)
        except PackageNotFoundError:
            return None

    from pmrl_bench import __version__

    return {
        "pmrl_bench": __version__,
        "python": platform.python_version(),
        "torch": installed("torch"),
        "numpy": installed("numpy"),
        "scikit-learn": installed("scikit-learn"),
        "plugins": dict(sorted((plugin_versions or {}).items())),
    }


def execute_sweep(
    plan: SweepPlan,
    config: SweepConfig,
    registry: Registry,
    store: ResultStore,
    versions: dict[str, Any],
    monitor_factory: Callable[[], Sequence[Any]] | None = None,
    reporters: SweepReporters | None = None,  # run --log: told about every run trained here; closed at the end
) -> SweepSummary:
    """Run every planned run, skipping valid existing results unless ``rerun``. A failing run never stops the sweep.

    Safe to interrupt at any point and to run several times at once into one results directory:

    * each run is claimed with an OS file lock before it trains; a run another process holds is deferred, and
      waited for at the end, so concurrent sweeps share the work instead of duplicating it;
    * a result is written atomically only after its run finished, so a kill leaves no partial result;
    * Ctrl-C, SIGTERM and SIGHUP raise :class:`~pmrl_bench.errors.Interrupted` saying what finished and what remains.

    A stored ``failed`` result is retried (it records an error, not a measurement); ``ok`` and ``diverged`` are kept.
    """
    from pmrl_bench.runner import distributed
    from pmrl_bench.runner.device import autocast_dtype, resolve_device
    from pmrl_bench.runner.interrupt import stop_signals_interrupt
    from pmrl_bench.stability import default_monitors

    device = resolve_device(config.device)
    autocast_dtype(device, config.precision)  # bad --precision fails before anything trains
    world = distributed.from_environment()  # several processes when launched by torchrun
    distributed.check_batch_size(world, config.budget.batch_size)
    device = distributed.initialise(world, device)
    if config.compile and world.enabled:
        raise UsageError("--compile is for one process per run; under torchrun leave it out")
    store.ensure_writable()
    from pmrl_bench.runner.parallel import execute_parallel, resolve_jobs, run_threads

    jobs = resolve_jobs(config.jobs, device, len(plan.specs), config.threads)
    if jobs > 1:
        if world.enabled:
            raise UsageError("--jobs runs several runs at once in one process tree; under torchrun every process "
                             "already trains the same run: drop --jobs or torchrun")
        with run_threads(config.threads):
            return execute_parallel(plan, config, registry, store, versions, monitor_factory or default_monitors,
                                    device, jobs)
    runner = _RunExecutor(plan, config, registry, store, versions, monitor_factory or default_monitors, device, world)
    runner.reporters = reporters if reporters and world.is_main else None  # rank 0 reports, as it writes results
    with run_threads(config.threads), stop_signals_interrupt():
        try:
            deferred = []
            for spec in tqdm(plan.specs, desc="sweep", unit="run", disable=not config.progress or None):
                if not runner.attempt(spec, wait=False):
                    deferred.append(spec)  # another process is training it right now
            for spec in deferred:
                runner.attempt(spec, wait=True)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP via stop_signals_interrupt
            signum = getattr(exc, "signum", signal.SIGINT)
            raise Interrupted(signum, runner.interrupted_message(signum)) from None
        finally:
            if runner.reporters:
                runner.reporters.close()
    runner.summary.init_trained, runner.summary.init_reused = runner.inits.trained, runner.inits.reused
    return runner.summary


class _RunExecutor:
    """Claims, trains, and stores one run at a time, keeping the sweep's summary."""

    def __init__(
        self,
        plan: SweepPlan,
        config: SweepConfig,
        registry: Registry,
        store: ResultStore,
        versions: dict[str, Any],
        monitor_factory: Callable[[], Sequence[Any]],
        device: Any,
        world: Any = None,  # a runner.distributed.DistributedContext; None: a single process
    ) -> None:
        self.plan, self.config, self.registry, self.store = plan, config, registry, store
        self.versions, self.monitor_factory, self.device = versions, monitor_factory, device
        self.summary = SweepSummary(planned=len(plan.specs))
        if world is None:
            from pmrl_bench.runner.distributed import SINGLE_PROCESS as world
        self.world = world
        self.started = time.time()
        self.current: RunSpec | None = None
        self.reporters: SweepReporters | None = None  # set by execute_sweep
        from pmrl_bench.runner.init_stage import InitStages

        self.inits = InitStages(store, registry, device, plan.fingerprints, config.precision, config.progress, world)
        from pmrl_bench.runner.start_state import StartEvaluations

        self.start_evaluations = StartEvaluations(plan.fingerprints)  # the runs of a seed share their starting state

    def _reusable(self, spec: RunSpec) -> RunResult | None:
        """A stored result that counts as this run being done, or None if the run must (re)train."""
        found = self.store.existing(spec.task, spec.objective, spec.config_id, spec.seed)
        if found is None:
            return None
        path = self.store.path_for(spec.task, spec.objective, spec.config_id, spec.seed)
        by_another = path not in self.summary.written and _mtime(path) >= self.started
        if by_another:  # a concurrent sweep finished it while we ran: never do it twice, even with --rerun
            return found
        if self.config.rerun or found.status == "failed":
            return None
        fingerprint = self.plan.fingerprints.get(spec.task)
        if fingerprint is not None and found.data_fingerprint != fingerprint:  # same parameters, other data
            if spec.run_id not in self.summary.retrained:
                self.summary.retrained.append(spec.run_id)
                print(f"pmrl-bench: retraining {spec.run_id}: the task's data changed since it ran (data fingerprint "
                      f"{found.data_fingerprint or 'not recorded'} -> {fingerprint})", file=sys.stderr)
            return None
        return found

    def attempt(self, spec: RunSpec, *, wait: bool) -> bool:
        """Run ``spec`` unless it is done. False when another process holds its claim and ``wait`` is False."""
        if self.world.enabled:
            return self._attempt_in_lockstep(spec)
        if self._skip_if_done(spec):
            return True
        claim = self.store.claim(spec.task, spec.objective, spec.config_id, spec.seed)
        try:
            claim.acquire(timeout=-1 if wait else 0)
        except Timeout:
            return False
        try:
            if self._skip_if_done(spec):  # finished by another process between our check and our claim
                return True
            self.store.remove_temporaries(spec.task, spec.objective, spec.config_id, spec.seed)
            self.current = spec
            self._run(spec)
            self.current = None
        finally:
            claim.release()
        return True

    def _attempt_in_lockstep(self, spec: RunSpec) -> bool:
        """Under torchrun all ranks must train the same runs: rank 0 claims (waiting if needed) and decides."""
        from pmrl_bench.runner.distributed import broadcast

        if not self.world.is_main:
            if broadcast(None, self.world):
                self._run(spec)
            else:
                self.summary.skipped += 1
            return True
        with self.store.claim(spec.task, spec.objective, spec.config_id, spec.seed):
            train = not self._skip_if_done(spec)
            broadcast(train, self.world)
            if train:
                self.store.remove_temporaries(spec.task, spec.objective, spec.config_id, spec.seed)
                self.current = spec
                self._run(spec)
                self.current = None
        return True

    def _skip_if_done(self, spec: RunSpec) -> bool:
        found = self._reusable(spec)
        if found is None:
            return False
        self.summary.skipped += 1
        self.summary.reused[found.status] = self.summary.reused.get(found.status, 0) + 1
        return True

    def _run(self, spec: RunSpec) -> None:
        from pmrl_bench.runner.device import synchronize
        from pmrl_bench.runner.train import RunOutcome, train_and_evaluate

        from pmrl_bench.runner.init_stage import InitStageFailed

        started = time.perf_counter()
        init_record = None
        monitors = list(self.monitor_factory())
        if self.reporters:  # training scalars reach the reporters through one more monitor
            monitors.append(self.reporters.start_run(spec))
        try:
            data = self.plan.data[spec.task]
            init_state, init_record = self.inits.starting_state(spec, data)
            outcome = train_and_evaluate(
                spec, data, self.registry, self.device, monitors,
                probe_every=self.config.probe_every, progress=self.config.progress,
                precision=self.config.precision, world=self.world, init_state=init_state,
                compiled=self.config.compile, start_evaluations=self.start_evaluations,
            )
            synchronize(self.device)  # duration_s must count finished kernels, not launched ones
        except InitStageFailed as exc:  # every run of this seed needs the stage: each is recorded as failed
            outcome = RunOutcome("failed", error=str(exc))
        except (Exception, SystemExit) as exc:  # a broken objective or plugin fails its own run only
            outcome = RunOutcome("failed", error=_describe(exc))
        if not self.world.is_main:  # rank 0 writes the result; the other ranks only helped train
            setattr(self.summary, outcome.status, getattr(self.summary, outcome.status) + 1)
            return
        try:
            result = self._result(spec, outcome, started, init_record)
            path = self.store.write(result)
        except OSError as exc:  # the disk, not the run: stopping is the only honest option
            raise ResultWriteError(
                f"cannot write the result of {spec.run_id} under {self.store.root}: {exc.strerror or exc}"
            ) from None
        except (ValueError, TypeError) as exc:  # a plugin produced metrics the schema cannot hold
            outcome = RunOutcome("failed", stability={}, error=f"result could not be stored: {_describe(exc)}")
            result = self._result(spec, outcome, started, init_record)
            path = self.store.write(result)
        self.summary.written.append(path)
        if self.reporters:
            self.reporters.end_run(result)
        setattr(self.summary, outcome.status, getattr(self.summary, outcome.status) + 1)

    def _result(self, spec: RunSpec, outcome: Any, started: float, init: dict[str, Any] | None = None) -> RunResult:
        from pmrl_bench.runner.device import autocast_dtype, describe

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

    def interrupted_message(self, signum: int) -> str:
        running = [self.current.run_id] if self.current is not None else []
        return interrupted_message(signum, self.summary, running, self.store.root)


def interrupted_message(signum: int, summary: SweepSummary, running: Sequence[str], root: Path) -> str:
    """The one line a stopped sweep prints: what stopped it, the runs it abandoned, what finished and remains."""
    s = summary
    done = s.ok + s.diverged + s.failed
    remaining = s.planned - done - s.skipped
    what = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    during = ""
    if len(running) == 1:
        during = f" during {running[0]} (not saved; it reruns)"
    elif running:
        during = f" during {', '.join(running)} (not saved; they rerun)"
    return (
        f"interrupted by {what}{during}: this sweep finished {done} of {s.planned} runs "
        f"({s.ok} ok, {s.diverged} diverged, {s.failed} failed) and found {s.skipped} already done; "
        f"{remaining} remain; results in {root}/; run the same command again to resume "
        "(leaderboards were not rebuilt)"
    )


class ResultWriteError(PmrlBenchError):
    """A result could not be written to disk (full, read-only, removed): the sweep stops (exit status 1)."""


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
