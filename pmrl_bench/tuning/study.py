"""``pmrl-bench tune``: one Optuna study per (task, objective, protocol), the same budget for every objective.

Fairness, enforced:

* every objective gets the same number of completed trials, the same sampler and sampler seed, the same training
  budget per trial (steps, batch, dimension) and the same trial seed; the learning rate and weight decay are
  searched for all of them alike (``space.BUDGET_SPACE``) beside each objective's own declared space;
* trials are scored on the validation split with one metric for every objective; the test split is never read;
* a trial that diverges or fails scores the worst value (0) and counts as a trial; it never stops the study;
* trial 0 of every study trains the published defaults (the objective's own defaults and the budget's learning rate
  and weight decay), enqueued before any draw, so a tuned configuration is never worse than its default on
  validation; the trials train on a seed of their own (:data:`DEFAULT_TRIAL_SEED`), which no test run uses.

Persistence: studies live in an Optuna storage, by default SQLite at ``<results>/_tuning/studies.db`` (``--storage``
takes any RDB URL Optuna supports, e.g. PostgreSQL, or a journal file on a network file system, so many machines or
Slurm array tasks can work on one study). Trials are started under a file lock that counts completed and running
trials first, so processes that share a machine (and its results directory) never start more than N; a trial whose
process died (``kill -9``) is found through its lock, marked failed and its parameters retried, so a killed ``tune``
resumes to exactly N. Across machines, a trial whose heartbeat stopped is marked failed after a grace period and
retried (Optuna's heartbeat in an RDB storage, a time in the trial's user attributes in a journal). Trial k samples
with a generator seeded by (sampler seed, k), so a resumed study draws what an uninterrupted one would.
"""

from __future__ import annotations

import datetime as dt
import math
import socket
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from pmrl_bench.console import say
from pmrl_bench.components import TaskData
from pmrl_bench.console import progress_label
from pmrl_bench.errors import SaveFailed, UsageError
from pmrl_bench.redact import mask_secrets
from pmrl_bench.registry import Registry
from pmrl_bench.results import ResultStore
from pmrl_bench.results.locks import lock_in
from pmrl_bench.results.store import TUNING_DIR
from pmrl_bench.runner.spec import RunSpec
from pmrl_bench.runner.sweep_plan import MAX_RUNS
from pmrl_bench.tuning.records import (
    TrialRecord, TunedParams, digest, record_path, write_record,
)
from pmrl_bench.tuning.space import (
    BUDGET_SPACE, DEFAULT_TRIAL_SEED, DEFAULT_TRIALS, Distribution, check_space, describe_space,
)
from pmrl_bench.tuning.storage import (
    GRACE_PERIOD, HEARTBEAT_INTERVAL, native_heartbeat, open_storage, prepare_store, storage_url, store_faults,
)

SAMPLERS = ("random", "tpe")
RETRIEVAL_METRICS = ("mean_R@1", "mean_R@5", "mean_R@10")
WORST = 0.0  # every metric is a rate in [0, 1], maximised
POLL = 2.0  # seconds between checks while other processes finish the last trials
MAX_SEED = 2**32 - 1  # the largest seed numpy's generators (and so Optuna's samplers) take
PUBLISHED_DEFAULTS = "published_defaults"  # the user attribute of the enqueued trial 0
HEARTBEAT_ATTR = "heartbeat"  # a running trial's last sign of life (seconds since the epoch) where Optuna keeps none


@dataclass
class TuneSettings:
    trials: int = DEFAULT_TRIALS
    sampler: str = "random"
    sampler_seed: int = 0
    trial_seed: int = DEFAULT_TRIAL_SEED
    metric: str = "mean_R@1"
    storage: str | None = None
    progress: bool = True

    def validate(self) -> None:
        if not 1 <= self.trials <= MAX_RUNS:  # each trial trains a run: the cap of a sweep's runs holds here too
            raise UsageError(f"--trials must be between 1 and {MAX_RUNS} (the same number of completed trials for "
                             f"every objective), got {self.trials}")
        if self.sampler not in SAMPLERS:
            raise UsageError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        for option, seed in (("--sampler-seed", self.sampler_seed), ("--seed", self.trial_seed)):
            if not 0 <= seed <= MAX_SEED:  # what numpy's and Optuna's generators accept
                raise UsageError(f"{option} must be between 0 and {MAX_SEED}, got {seed}")


def check_metric(metric: str, data: Mapping[str, TaskData]) -> None:
    """The metric must exist for every task: a retrieval mean, or a classification probe the task has."""
    if metric in RETRIEVAL_METRICS:
        return
    probe, sep, view = metric.partition(":")
    if not sep or probe not in ("linear", "knn"):
        raise UsageError(f"--metric {metric!r} is not a metric: use one of {', '.join(RETRIEVAL_METRICS)}, or a "
                         "classification probe such as linear:fused or knn:<modality>")
    for task, task_data in data.items():
        views = {m.name for m in task_data.modalities} | {"fused"}
        if task_data.train.labels is None:
            raise UsageError(f"--metric {metric!r}: task {task!r} has no labels, so no classification probe; "
                             f"use {RETRIEVAL_METRICS[0]}")
        if view not in views:
            raise UsageError(f"--metric {metric!r}: task {task!r} has no view {view!r}; "
                             f"views: {', '.join(sorted(views))}")


def metric_value(metrics: Mapping[str, Any], metric: str) -> float:
    if metric in RETRIEVAL_METRICS:
        key = metric.removeprefix("mean_")
        values = [scores[key] for scores in metrics["retrieval"].values()]
        return float(sum(values) / len(values))
    return float(metrics["classification"][metric])


def objective_space(registry: Registry, objective: str) -> dict[str, Distribution]:
    """The objective's declared space, checked (a space that cannot be sampled is bad input, before any trial)."""
    component = registry.get("objective", objective)
    try:
        return check_space(component.metadata.get("search_space"), component.parameters(), f"objective {objective!r}")
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def check_space_builds(registry: Registry, objective: str, params: dict[str, Any],
                       space: Mapping[str, Distribution]) -> None:
    """Every extreme value of every searched parameter must be accepted by the objective's factory."""
    component = registry.get("objective", objective)
    for name, distribution in space.items():
        for value in distribution.corners():
            try:
                component.create(**{**params, name: value})
            except UsageError as exc:
                raise UsageError(f"the search space of objective {objective!r} cannot be sampled: {name}={value!r} "
                                 f"is rejected ({exc}); narrow the space") from None


@dataclass
class Study:
    """One study: the trials of one objective on one task under one protocol."""

    spec: RunSpec  # the run every trial starts from (seed = the trial seed); searched values replace its own
    space: dict[str, Distribution]
    settings: TuneSettings
    root: Path
    context: dict[str, Any] = field(init=False)
    study_id: str = field(init=False)

    def __post_init__(self) -> None:
        params = self.spec.params()
        budget = {k: v for k, v in params["budget"].items() if k not in BUDGET_SPACE}
        fixed = {k: v for k, v in params["objective"].items() if k not in self.space}
        self.context = {"task": self.spec.task, "objective": self.spec.objective, "task_params": params["task"],
                        "encoders": params["encoders"], "budget": budget, "objective_fixed": fixed,
                        "protocol": params["protocol"], "selection": params["selection"],
                        "evaluation": params["evaluation"]}
        self.study_id = digest({"context": self.context, "space": self.space_description(),
                                "metric": self.settings.metric,
                                "sampler": self.settings.sampler, "sampler_seed": self.settings.sampler_seed,
                                "trial_seed": self.settings.trial_seed, "trial_0": PUBLISHED_DEFAULTS})

    @property
    def name(self) -> str:
        return f"{self.spec.task}/{self.spec.objective}/{self.study_id}"

    @property
    def context_id(self) -> str:
        return digest(self.context)

    def space_description(self) -> dict[str, Any]:
        return {"objective": describe_space(self.space), "budget": describe_space(BUDGET_SPACE)}

    def published_defaults(self) -> dict[str, Any]:
        """Trial 0's values: the run's own (default) values of every searched parameter, as Optuna names them."""
        params = self.spec.params()
        return {**{name: params["budget"][name] for name in BUDGET_SPACE},
                **{name: params["objective"][name] for name in self.space if name in params["objective"]}}

    def trial_spec(self, objective_params: Mapping[str, Any], budget_params: Mapping[str, Any]) -> RunSpec:
        return replace(self.spec, objective_params={**self.spec.objective_params, **objective_params},
                       budget=replace(self.spec.budget, **budget_params), seed=self.settings.trial_seed)


def _sampler(kind: str, seed: int) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=seed) if kind == "tpe" else optuna.samplers.RandomSampler(seed=seed)


def trial_sampler_seed(sampler_seed: int, number: int) -> int:
    return (sampler_seed * 1_000_003 + number) % 2**32


@contextmanager
def _heartbeat(storage: Any, trial_id: int) -> Iterator[None]:
    """Record a heartbeat for a running trial every HEARTBEAT_INTERVAL seconds (other machines can then tell a
    dead trial from a slow one): Optuna's own in an RDB storage, the time in the trial's ``HEARTBEAT_ATTR``
    elsewhere (a journal file, which has none)."""
    stop = threading.Event()
    native = native_heartbeat(storage)

    def record() -> None:
        if native:
            storage.record_heartbeat(trial_id)
        else:
            storage.set_trial_user_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def beat() -> None:
        while not stop.wait(HEARTBEAT_INTERVAL):
            try:
                record()
            except Exception:  # noqa: BLE001 - a missed heartbeat only delays failure detection
                pass

    record()
    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def _silent_for(trial: Any) -> float:
    """Seconds since a running trial's last HEARTBEAT_ATTR (or since it started, before the first)."""
    beat = trial.user_attrs.get(HEARTBEAT_ATTR)
    if isinstance(beat, int | float):
        return time.time() - beat
    return time.time() - trial.datetime_start.timestamp() if trial.datetime_start is not None else 0.0


class StudyRunner:
    """Runs one study to ``settings.trials`` completed trials; safe to run in several processes at once."""

    def __init__(self, study: Study, data: TaskData, registry: Registry, device: Any, precision: str,
                 inits: Any, storage: Any) -> None:
        import optuna

        self.study, self.data, self.registry, self.device, self.precision = study, data, registry, device, precision
        self.inits, self.storage = inits, storage
        self.host = socket.gethostname()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # one progress bar, not a log line per trial
        # This runner records heartbeats itself (ask/tell, not Study.optimize), which Optuna warns about.
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        self.optuna_study = optuna.create_study(
            storage=storage, study_name=study.name, direction="maximize", load_if_exists=True,
            sampler=_sampler(study.settings.sampler, study.settings.sampler_seed),
        )
        for key, value in (("context", study.context), ("space", study.space_description()),
                           ("metric", study.settings.metric), ("sampler", study.settings.sampler),
                           ("sampler_seed", study.settings.sampler_seed), ("trial_seed", study.settings.trial_seed)):
            self.optuna_study.set_user_attr(key, value)
        self.locks = study.root / TUNING_DIR / ".locks"
        with lock_in(self.locks, study.name):  # one process enqueues trial 0, before any trial is asked for
            if not self.optuna_study.get_trials(deepcopy=False):
                self.optuna_study.enqueue_trial(study.published_defaults(), user_attrs={PUBLISHED_DEFAULTS: True},
                                                skip_if_exists=False)

    # -- slots -------------------------------------------------------------------------------------------
    def _trial_lock(self, number: int) -> FileLock:
        return lock_in(self.locks, f"{self.study.name}#{number}")

    def _reap_dead_trials(self) -> None:
        """Trials whose process died, failed and their parameters retried: on this machine, those whose lock is free;
        on another, those whose heartbeat stopped GRACE_PERIOD seconds ago (Optuna's check in an RDB storage, the
        trial's HEARTBEAT_ATTR in a journal file, so a study shared by cluster jobs survives a job that was killed)."""
        import optuna
        from optuna.trial import TrialState

        native = native_heartbeat(self.storage)
        for trial in self.optuna_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.user_attrs.get("host") != self.host:
                if not native and _silent_for(trial) > GRACE_PERIOD:
                    self._retry(trial)
                continue
            lock = self._trial_lock(trial.number)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue  # alive
            try:
                self._retry(trial)
            finally:
                lock.release()
        if native:  # ask/tell never runs Optuna's own check, which Study.optimize would
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.optuna_study)

    def _retry(self, trial: Any) -> None:
        """Fail a dead trial and enqueue its parameters again, unless another process has just done so."""
        import optuna
        from optuna.trial import TrialState

        try:
            self.storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            return
        attrs = {"retry_of": trial.number}
        if trial.user_attrs.get(PUBLISHED_DEFAULTS):
            attrs[PUBLISHED_DEFAULTS] = True
        self.optuna_study.enqueue_trial(trial.params, user_attrs=attrs)

    def counts(self) -> tuple[int, int]:
        from optuna.trial import TrialState

        trials = self.optuna_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
        complete = sum(1 for t in trials if t.state == TrialState.COMPLETE)
        return complete, len(trials) - complete

    def _start_trial(self) -> tuple[Any, FileLock] | None:
        """Under the study's lock: reap, count, and start a trial if fewer than N are complete or running."""
        with lock_in(self.locks, self.study.name):
            self._reap_dead_trials()
            complete, running = self.counts()
            if complete + running >= self.study.settings.trials:
                return None
            trial = self.optuna_study.ask()
            trial.set_user_attr("host", self.host)
            lock = self._trial_lock(trial.number)
            lock.acquire()
        # Seed the draws of trial k by (sampler seed, k): a resumed study samples what an uninterrupted one would.
        self.optuna_study.sampler = _sampler(self.study.settings.sampler,
                                             trial_sampler_seed(self.study.settings.sampler_seed, trial.number))
        return trial, lock

    # -- trials ------------------------------------------------------------------------------------------
    def _evaluate(self, trial: Any) -> tuple[float, str, str | None]:
        from pmrl_bench.runner.train import TrainOptions, train_and_evaluate

        # The budget first: with the random sampler, trial k of every objective then gets the same learning rate and
        # weight decay, so objectives differ only in what they themselves declare.
        budget_params = {name: d.suggest(trial, name) for name, d in BUDGET_SPACE.items()}
        objective_params = {name: d.suggest(trial, name) for name, d in self.study.space.items()}
        try:
            spec = self.study.trial_spec(objective_params, budget_params)
            init_state, _ = self.inits.starting_state(spec, self.data)
            outcome = train_and_evaluate(spec, self.data, self.registry,
                                         TrainOptions(device=self.device, progress=False, precision=self.precision,
                                                      init_state=init_state),
                                         evaluate_on="validation")
        except SaveFailed:  # the disk refused an init stage: the environment's fault, not a failed trial
            raise
        except (Exception, SystemExit) as exc:  # a failing trial counts, scored the worst value
            return WORST, "failed", f"{type(exc).__name__}: {exc}"
        if outcome.status != "ok":
            return WORST, outcome.status, outcome.error
        value = metric_value(outcome.metrics, self.study.settings.metric)
        if not math.isfinite(value):
            return WORST, "failed", f"metric {self.study.settings.metric} is not finite"
        return value, "ok", None

    def run(self, progress: bool = True) -> None:
        """Take trials until the study has its N completed ones (other processes may take some)."""
        complete, _ = self.counts()
        bar = tqdm(total=self.study.settings.trials, initial=min(complete, self.study.settings.trials),
                   desc=progress_label(self.study.name), unit="trial",
                   disable=not (progress and self.study.settings.progress) or None, leave=False)
        try:
            while True:
                started = self._start_trial()
                if started is None:
                    complete, running = self.counts()
                    if complete >= self.study.settings.trials or running == 0:
                        break
                    time.sleep(POLL)  # another process runs the last trials; wait for them
                    continue
                trial, lock = started
                try:
                    with _heartbeat(self.storage, trial._trial_id):
                        value, status, error = self._evaluate(trial)
                    trial.set_user_attr("status", status)
                    if error:
                        trial.set_user_attr("error", mask_secrets(error)[:500])
                    self.optuna_study.tell(trial, value)
                finally:
                    lock.release()
                bar.n = min(self.counts()[0], self.study.settings.trials)  # trials of other workers count too
                bar.refresh()
        finally:
            bar.close()

    def first_error(self) -> str:
        """What the earliest completed trial that did not work stored as its error (for a one-line report)."""
        from optuna.trial import TrialState

        for trial in sorted(self.optuna_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                            key=lambda t: t.number):
            if trial.user_attrs.get("status", "ok") != "ok":
                return f"trial {trial.number}: {trial.user_attrs.get('status')}: {trial.user_attrs.get('error', '')}"
        return "no error recorded"

    def record(self) -> TunedParams:
        """The study as a tuned-parameter file (completed trials in order; the best ``ok`` one, earliest on ties:
        a failed or diverged trial scores the worst value and is never the best, even when every score is 0)."""
        from optuna.trial import TrialState

        trials = [
            TrialRecord(number=t.number, value=float(t.value), status=str(t.user_attrs.get("status", "ok")),
                        params=_split_params(t.params, self.study.space),
                        published_defaults=bool(t.user_attrs.get(PUBLISHED_DEFAULTS, False)))
            for t in sorted(self.optuna_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                            key=lambda t: t.number)
        ]
        best = max((t for t in trials if t.status == "ok"), key=lambda t: (t.value, -t.number), default=None)
        settings = self.study.settings
        return TunedParams(
            study=self.study.name, study_id=self.study.study_id, task=self.study.spec.task,
            objective=self.study.spec.objective, protocol=self.study.spec.protocol.name, context=self.study.context,
            context_id=self.study.context_id, space=self.study.space_description(), metric=settings.metric,
            sampler=settings.sampler, sampler_seed=settings.sampler_seed, trial_seed=settings.trial_seed,
            trials_requested=settings.trials, trials=trials, best=best,
            updated=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )


def _split_params(params: Mapping[str, Any], space: Mapping[str, Distribution]) -> dict[str, Any]:
    """Optuna's flat parameters as ``{"objective": {...}, "budget": {...}}``."""
    return {"objective": {k: v for k, v in params.items() if k in space},
            "budget": {k: v for k, v in params.items() if k in BUDGET_SPACE}}


def _work(studies: list[Study], plan_data: Mapping[str, TaskData], registry: Registry, store: ResultStore,
          device: Any, precision: str, fingerprints: Mapping[str, str], progress: bool) -> list[StudyRunner]:
    """Take trials of every study in turn until each has its N (other processes may be taking trials too)."""
    from pmrl_bench.runner.init_stage import InitStages

    url = storage_url(studies[0].settings.storage, store.root)
    with store_faults(url, store.root):  # a full disk in the middle of a study is one line too
        storage = open_storage(url, store.root)
        inits = InitStages(store, registry, device, dict(fingerprints), precision, progress=False)
        runners = []
        for study in tqdm(studies, desc="tune", unit="study", disable=not progress or len(studies) < 2 or None):
            runner = StudyRunner(study, plan_data[study.spec.task], registry, device, precision, inits, storage)
            runner.run(progress)
            runners.append(runner)
    return runners


def _worker(studies: list[Study], plan_data: Mapping[str, TaskData], root: Path, device: str, precision: str,
            fingerprints: Mapping[str, str], threads: int) -> None:
    """A ``tune --jobs`` worker process: the same loop, quietly (the parent shows progress, writes the files, and
    says what stopped it)."""
    import torch

    from pmrl_bench.plugins import get_registry
    from pmrl_bench.runner.interrupt import quiet_worker
    from pmrl_bench.runner.jobs import run_threads

    with quiet_worker(), run_threads(threads):
        _work(studies, plan_data, get_registry(), ResultStore(root), torch.device(device), precision, fingerprints,
              False)


def run_studies(studies: list[Study], plan_data: Mapping[str, TaskData], registry: Registry, store: ResultStore,
                device: Any, precision: str, fingerprints: Mapping[str, str], progress: bool, jobs: int = 1,
                threads: int = 1) -> list[tuple[Path | None, TunedParams]]:
    """Run every study to N completed trials and write its tuned-parameter file; returns ``(path, record)`` of each
    study, ``path`` None for a study without a successful trial (every trial failed or diverged), which gets no file.

    With ``jobs`` > 1, ``jobs - 1`` worker processes take trials of the same studies beside this one (the studies'
    locks keep the total at N); each process uses ``threads`` torch threads, so a trial's result does not depend
    on ``jobs``.
    """
    if not studies:
        return []
    import multiprocessing

    from pmrl_bench.runner.interrupt import terminal_signals_ignored
    from pmrl_bench.runner.jobs import run_threads, worker_device

    url = storage_url(studies[0].settings.storage, store.root)
    with store_faults(url, store.root):  # every part of the store written once, before any trial or worker
        prepare_store(url, store.root, [study.name for study in studies])
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker, daemon=True,
                        args=(studies, dict(plan_data), store.root, str(worker_device(device, i)), precision,
                              dict(fingerprints), threads))
        for i in range(1, jobs)
    ]
    try:
        with terminal_signals_ignored():  # Ctrl-C reaches this process only; it stops the workers
            for worker in workers:
                worker.start()
        with run_threads(threads):
            runners = _work(studies, plan_data, registry, store, device, precision, fingerprints, progress)
        for worker in workers:
            worker.join()
    finally:
        for worker in workers:  # Ctrl-C, SIGTERM or an error here: stop the workers too (they exit quietly)
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
                worker.join()
    with store_faults(url, store.root):
        return [_write_record(runner, store.root) for runner in runners]


def _write_record(runner: StudyRunner, root: Path) -> tuple[Path | None, TunedParams]:
    """Write a study's tuned-parameter file; a study whose every trial failed or diverged gets none (and loses one
    left from before), so ``run --tuned`` never trains with the parameters of a trial that did not work."""
    study = runner.study
    record = runner.record()
    path = record_path(root, study.spec.task, study.spec.objective, study.study_id)
    if record.best is None:
        path.unlink(missing_ok=True)
        say(f"study {study.name}: all {len(record.trials)} trials failed or diverged ({runner.first_error()}); "
            "no tuned-parameter file written")
        return None, record
    write_record(path, record)
    if not record.complete:
        say(f"warning: study {study.name} has {len(record.trials)} of "
            f"{record.trials_requested} trials (others are still running elsewhere)")
    return path, record
