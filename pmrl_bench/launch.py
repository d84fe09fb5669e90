"""Sweeps and studies on a cluster: ``run`` and ``tune`` with ``--launcher slurm|local`` submit N copies of their own
command line as one job array through submitit, wait for every job, and gather what the jobs wrote.

A ``run`` job is exactly one shard: the same command line with ``--shard i/N`` added and the launcher's options left
out, so every run of the sweep lands in one job, and the jobs write into the one results directory (its claims and
file locks make concurrent writers safe; on a cluster it must be on a file system every node sees). A ``tune`` job
is the same ``tune`` command line: the jobs take trials of the same studies, whose storage and locks keep each study
at exactly ``--trials``. When every job has ended, this process rebuilds the leaderboards from the gathered results
(``run``) or writes the tuned-parameter files (``tune``). A job that fails is one line naming its log; the results
of the others are kept, and the same command again resumes what is missing.

``--launcher local`` runs the jobs as processes of this machine through submitit's ``LocalExecutor`` (the same
code path as SLURM, without a scheduler); ``--launcher slurm`` submits them with ``sbatch``. Job logs, submission
scripts and submitit's pickles live under ``RESULTS/_launch/`` (ignored by git and by the result scans).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmrl_bench.benchmark import BenchmarkRun
from pmrl_bench.console import say
from pmrl_bench.device import resolve_device
from pmrl_bench.errors import RunFailed, UsageError
from pmrl_bench.leaderboard.build import ensure_writable
from pmrl_bench.leaderboard.rebuild import rebuild_leaderboards
from pmrl_bench import plugins
from pmrl_bench.registry import Registry
from pmrl_bench.results import ResultStore
from pmrl_bench.runner.interrupt import interruptible
from pmrl_bench.runner.summary import SweepSummary
from pmrl_bench.runner.sweep_plan import SweepConfig, plan_sweep
from pmrl_bench.tuning.records import TunedParams
from pmrl_bench.tuning.storage import journal_path, open_storage, prepare_store, storage_url, store_faults
from pmrl_bench.tuning.study import TuneSettings, run_studies
from pmrl_bench.tuning.study_plan import apply_tuned, plan_tuning

LAUNCHERS = ("slurm", "local")
INSTALL_HINT = "pip install 'pmrl-bench[cluster]' (or: pip install submitit)"
LAUNCH_DIR = "_launch"  # under the results directory: "_" directories hold no result files
# What every job runs, followed by its command line: this interpreter and the package. A test may swap in a script
# that registers test components first (jobs are fresh processes that load plugins themselves).
PROGRAM: list[str] = [sys.executable, "-m", "pmrl_bench"]
LOCAL_TIME_MIN = 7 * 24 * 60  # a local job runs until it ends: submitit's LocalExecutor would stop it at 2 minutes
CANCEL_WAIT = 30.0  # seconds a cancelled local job gets to stop its run and end
POLL = {"local": 0.5, "slurm": 15.0}  # seconds between looks at the jobs (sacct is not to be hammered)
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_time(text: str) -> int:
    """A SLURM time limit in whole minutes: ``90``, ``1:30:00``, ``2-00:00:00`` (days-hours:minutes:seconds),
    ``45:00`` (minutes:seconds), as ``sbatch --time`` reads them; seconds round up."""
    match = _TIME.match(text.strip())
    if not match:
        raise UsageError(f"--slurm-time must be MINUTES, HOURS:MINUTES:SECONDS or DAYS-HOURS[:MINUTES[:SECONDS]] "
                         f"(e.g. 120 or 2:00:00), got {text!r}")
    days, first, second, third = (int(part) if part is not None else None for part in match.groups())
    if days is not None:  # D-H, D-H:M, D-H:M:S
        hours, minutes, seconds = first, second or 0, third or 0
        total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    elif third is not None:  # H:M:S
        total = (first * 60 + second) * 60 + third
    elif second is not None:  # M:S
        total = first * 60 + second
    else:  # M
        total = first * 60
    if total <= 0:
        raise UsageError(f"--slurm-time must be a positive time limit (e.g. 120 or 2:00:00), got {text!r}")
    return -(-total // 60)


@dataclass(frozen=True)
class LauncherSettings:
    """Where the jobs run and what each may use. ``count``: the jobs of the array (``run``: shards).
    ``partition``/``time_min``/``gpus``/``cpus``/``extra``: SLURM's partition, time limit in minutes, GPUs per job,
    CPUs per job, and further ``sbatch`` options (``{"account": "lab"}`` is ``--account=lab``)."""

    kind: str
    count: int
    partition: str | None = None
    time_min: int | None = None
    gpus: int | None = None
    cpus: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def validate(self, count_option: str) -> None:
        if self.kind not in LAUNCHERS:
            raise UsageError(f"--launcher must be one of {', '.join(LAUNCHERS)}, got {self.kind!r}")
        if self.count < 1:
            raise UsageError(f"{count_option} must be at least 1 (the number of jobs), got {self.count}")
        for option, value in (("--slurm-gpus", self.gpus), ("--slurm-cpus", self.cpus)):
            if value is not None and value < (0 if option == "--slurm-gpus" else 1):
                raise UsageError(f"{option} must be {'>= 0' if option == '--slurm-gpus' else '>= 1'}, got {value}")
        given = [option for option, value in (("--slurm-partition", self.partition), ("--slurm-time", self.time_min),
                                              ("--slurm-gpus", self.gpus), ("--slurm-cpus", self.cpus),
                                              ("--slurm-arg", self.extra or None)) if value is not None]
        if self.kind == "local" and given:
            raise UsageError(f"{given[0]} applies to --launcher slurm; --launcher local runs the jobs on this machine "
                             "with the devices it sees, without a time limit")
        if self.kind == "slurm" and self.time_min is None:
            raise UsageError("--launcher slurm needs --slurm-time (each job's time limit, e.g. 120 or 2:00:00): "
                             "submitit's default would stop every job after 5 minutes")


def require_submitit() -> Any:
    """The submitit module, or the one line that says how to install it."""
    try:
        import submitit
    except ImportError:
        raise UsageError(f"--launcher needs submitit, which is not installed: {INSTALL_HINT}") from None
    return submitit


def check_launcher(settings: LauncherSettings, count_option: str) -> None:
    """Everything about the launcher that can be wrong before anything is planned: its options, submitit, sbatch."""
    settings.validate(count_option)
    require_submitit()
    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None] if settings.kind == "slurm" else []
    if missing:  # submitit submits with sbatch and starts each job's command with srun
        raise UsageError(f"--launcher slurm: {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not on "
                         "PATH (this is not a SLURM login node); submit from one, or use --launcher local")


def run_job(command: list[str], cwd: str, environment: dict[str, str | None]) -> int:
    """What one job executes: the command, its output in the job's log files; returns its exit status.
    ``environment``: variables to set in the command's environment (None: unset).

    A stop (scancel, a time limit, the launcher cancelling) reaches this process first: it passes SIGINT on, so the
    command stops as after Ctrl-C, its finished runs saved."""
    env = dict(os.environ)
    for key, value in environment.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    process = subprocess.Popen(command, cwd=cwd, env=env)
    try:
        return process.wait()
    except BaseException:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        raise


@dataclass(frozen=True)
class JobOutcome:
    """How one job ended: its exit status (None: it did not end by itself) and where its log is."""

    label: str
    status: int | None
    log: Path
    said: str = ""  # the last line of its log, or what submitit said about a job that did not end by itself

    @property
    def ok(self) -> bool:
        return self.status == 0


def _executor(settings: LauncherSettings, folder: Path, name: str) -> Any:
    submitit = require_submitit()
    if settings.kind == "local":
        executor = submitit.LocalExecutor(folder=str(folder))
        executor.update_parameters(timeout_min=LOCAL_TIME_MIN)
        return executor
    executor = submitit.SlurmExecutor(folder=str(folder))
    parameters: dict[str, Any] = {"job_name": name, "time": settings.time_min}
    for key, value in (("partition", settings.partition), ("gpus_per_node", settings.gpus),
                       ("cpus_per_task", settings.cpus)):
        if value is not None:
            parameters[key] = value
    if settings.extra:
        parameters["additional_parameters"] = dict(settings.extra)
    try:
        executor.update_parameters(**parameters)
    except ValueError as exc:
        raise UsageError(f"--launcher slurm: submitit refuses these options ({_first_line(exc)}); check "
                         "--slurm-partition, --slurm-time, --slurm-gpus, --slurm-cpus and --slurm-arg") from None
    return executor


def launch_jobs(commands: Sequence[list[str]], labels: Sequence[str], settings: LauncherSettings, root: Path,
                name: str, resume: str) -> list[JobOutcome]:
    """Submit one job per command as one array, wait for all of them, and say each that failed in one line.
    ``resume``: what the line of a launcher stopped while it waits says about going on."""
    folder = (root / LAUNCH_DIR).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / ".gitignore").exists():  # logs and pickles are not results: never committed
        (folder / ".gitignore").write_text("*\n", encoding="utf-8")
    executor = _executor(settings, folder, name)
    # submitit's local executor hides every GPU from its jobs (CUDA_VISIBLE_DEVICES=""): they see what this process
    # sees. On SLURM the scheduler sets what a job sees.
    environment = {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")} if settings.kind == "local" else {}
    count = len(commands)
    try:
        # submitit prints sbatch's complaint itself before raising it: here it is the one line below
        with _controller_output(folder if settings.kind == "local" else None), redirect_stderr(io.StringIO()):
            jobs = executor.map_array(run_job, [list(c) for c in commands], [os.getcwd()] * count,
                                      [environment] * count)
    except Exception as exc:  # noqa: BLE001 - sbatch refusing the array (a partition that does not exist, ...)
        raise UsageError(f"--launcher {settings.kind}: the jobs could not be submitted ({_first_line(exc)}); "
                         "check the --slurm-* options") from None
    where = folder.relative_to(Path.cwd()) if folder.is_relative_to(Path.cwd()) else folder
    array = f" as array {jobs[0].job_id.split('_')[0]}" if settings.kind == "slurm" else ""
    say(f"submitted {len(jobs)} {settings.kind} jobs{array}; logs in {where}/; waiting for them (Ctrl-C cancels "
        "them)")
    return _wait(jobs, labels, settings, root, resume)


@contextmanager
def _controller_output(folder: Path | None) -> Iterator[None]:
    """Within the block, processes started write their output to ``folder/local-controllers.log``, not to this
    terminal: submitit's local executor starts one controller per job, which inherits this process's stdout and
    stderr and prints a traceback there when it is cancelled (and ``run --json`` keeps stdout for the JSON)."""
    if folder is None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with (folder / "local-controllers.log").open("ab") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            yield
    finally:
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


def _wait(jobs: list[Any], labels: Sequence[str], settings: LauncherSettings, root: Path,
          resume: str) -> list[JobOutcome]:
    def stopped(signal_name: str) -> str:
        return (f"interrupted by {signal_name} while waiting for {len(jobs)} {settings.kind} job(s): cancelled those "
                f"still running; {resume}")

    outcomes: dict[int, JobOutcome] = {}
    with interruptible(stopped):
        try:
            while len(outcomes) < len(jobs):
                for index, job in enumerate(jobs):
                    if index not in outcomes and job.done():
                        outcomes[index] = _outcome(job, labels[index])
                        if not outcomes[index].ok:
                            say(_failure_line(outcomes[index]))
                if len(outcomes) < len(jobs):
                    time.sleep(POLL[settings.kind])
        except KeyboardInterrupt:
            _cancel([job for index, job in enumerate(jobs) if index not in outcomes], settings.kind)
            raise
    return [outcomes[index] for index in range(len(jobs))]


def _cancel(jobs: list[Any], kind: str) -> None:
    """Stop the jobs: scancel on SLURM. A local job is a controller process, which submitit stops with SIGINT, a
    signal a process started in the background ignores: its processes get SIGTERM instead, which the command
    handles as a stop (its finished runs saved) and submitit's job wrapper outlives, so that the job ends as it
    would by itself. Waits up to CANCEL_WAIT seconds for local jobs to end."""
    if kind == "slurm":
        for job in jobs:
            job.cancel(check=False)
        return
    import psutil

    for job in jobs:
        try:
            processes = psutil.Process(int(job.job_id)).children(recursive=True)
        except (psutil.Error, ValueError):
            continue
        for process in processes:
            try:
                process.terminate()
            except psutil.Error:
                pass
    deadline = time.monotonic() + CANCEL_WAIT
    while time.monotonic() < deadline and not all(job.done() for job in jobs):
        time.sleep(POLL["local"])


def _outcome(job: Any, label: str) -> JobOutcome:
    log = Path(job.paths.stderr)
    try:
        status = job.result()
    except Exception as exc:  # noqa: BLE001 - submitit's errors for a job killed, timed out or lost
        return JobOutcome(label, None, log, _first_line(exc))
    return JobOutcome(label, int(status), log, "" if status == 0 else _last_log_line(log))


def _failure_line(outcome: JobOutcome) -> str:
    ended = "did not finish" if outcome.status is None else f"exited with status {outcome.status}"
    said = f" ({outcome.said})" if outcome.said else ""
    return f"job {outcome.label} {ended}{said}; log: {outcome.log}"


def _last_log_line(log: Path) -> str:
    """The last line the command wrote to the job's log (pmrl-bench's one line, when it stopped on purpose)."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    said = [line.strip() for line in lines if line.strip() and not line.startswith("submitit ")]
    return said[-1] if said else ""


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def job_commands(argv: Sequence[str], count: int, shards: bool) -> tuple[list[list[str]], list[str]]:
    """Each job's command line (``argv`` without the launcher's options, progress bars off, and ``--shard i/N`` for
    a ``run``), and how a message names each job."""
    base = [*PROGRAM, *argv, "--no-progress"]
    if shards:
        return ([[*base, "--shard", f"{i}/{count}"] for i in range(1, count + 1)],
                [f"{i}/{count} (--shard {i}/{count})" for i in range(1, count + 1)])
    return [list(base) for _ in range(count)], [f"{i}/{count}" for i in range(1, count + 1)]


def launch_run(config: SweepConfig, results_dir: Path, leaderboard_dir: Path, settings: LauncherSettings,
               argv: Sequence[str], *, registry: Registry | None = None, tuned: bool = False,
               params_from: Sequence[Path] = ()) -> BenchmarkRun:
    """``run --launcher``: check every input here, run the sweep as ``settings.count`` shard jobs, then rebuild the
    pages from every result in the directory. ``argv``: the command line without the launcher's options."""
    check_launcher(settings, "--shard-count")
    registry = registry if registry is not None else plugins.MANAGER.registry
    plan = plan_sweep(config, registry)  # bad input is one line here, not N failed jobs
    if tuned or params_from:
        plan = apply_tuned(plan, results_dir, list(params_from), use_results=tuned, registry=registry)
    if settings.count > len(plan.specs):
        raise UsageError(f"--shard-count {settings.count} is more than the sweep's {len(plan.specs)} runs: give at "
                         f"most {len(plan.specs)}")
    store = ResultStore(results_dir)
    store.ensure_writable()
    ensure_writable(leaderboard_dir, "--leaderboard")
    before = {spec.run_id: _stamp(store, spec) for spec in plan.specs}
    commands, labels = job_commands(argv, settings.count, shards=True)
    outcomes = launch_jobs(commands, labels, settings, results_dir, "pmrl-bench-run",
                           f"finished runs are saved in {results_dir}/; run the same command again to resume "
                           "(leaderboards were not rebuilt)")
    failed = sum(not outcome.ok for outcome in outcomes)
    pages = rebuild_leaderboards(results_dir, leaderboard_dir,
                                 after=f"{len(outcomes) - failed} of {len(outcomes)} jobs finished, results saved")
    summary = SweepSummary(planned=len(plan.specs))
    results = []
    for spec in plan.specs:
        result = store.existing(spec.task, spec.objective, spec.config_id, spec.seed)
        if result is None:
            summary.lost.append(spec.run_id)  # its job failed before storing it: the next run trains it
            continue
        results.append(result)
        if _stamp(store, spec) == before[spec.run_id]:
            summary.skipped += 1
            summary.reused[result.status] = summary.reused.get(result.status, 0) + 1
        else:
            setattr(summary, result.status, getattr(summary, result.status) + 1)
    return BenchmarkRun(plan, summary, pages, results)


def _stamp(store: ResultStore, spec: Any) -> tuple[int, int] | None:
    """A result file's identity before and after the jobs (a job that wrote it changes it)."""
    try:
        stat = store.path_for(spec.task, spec.objective, spec.config_id, spec.seed).stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_ino


def launch_tune(config: SweepConfig, tune_settings: TuneSettings, results_dir: Path, settings: LauncherSettings,
                argv: Sequence[str], *, registry: Registry | None = None) -> list[tuple[Path | None, TunedParams]]:
    """``tune --launcher``: check every input and create the studies here, let ``settings.count`` jobs take their
    trials, then write the tuned-parameter files (no trial trains here: a study short of ``--trials`` after the jobs
    is an error that names them, and the same command again resumes it)."""
    check_launcher(settings, "--job-count")
    registry = registry if registry is not None else plugins.MANAGER.registry
    store = ResultStore(results_dir)
    studies, plan = plan_tuning(config, tune_settings, registry, store.root)
    if settings.count > tune_settings.trials:
        raise UsageError(f"--job-count {settings.count} is more than --trials {tune_settings.trials}: a job beyond "
                         "one per trial would only wait; give at most --trials")
    store.ensure_writable()
    url = storage_url(tune_settings.storage, store.root)
    if settings.kind == "slurm" and journal_path(url) is None and url.startswith("sqlite"):
        say("warning: jobs on several nodes share the studies through SQLite, whose locks many network file systems "
            "break; prefer --storage journal:///SHARED/PATH/studies.log")
    with store_faults(url, store.root):  # the studies exist before any job starts: no job races to create them
        prepare_store(url, store.root, [study.name for study in studies])
    commands, labels = job_commands(argv, settings.count, shards=False)
    outcomes = launch_jobs(commands, labels, settings, results_dir, "pmrl-bench-tune",
                           "completed trials are stored in the studies; run the same command again to resume to "
                           "exactly --trials (no tuned-parameter file was written)")
    short = _short_studies([study.name for study in studies], tune_settings.trials, url, store.root)
    if short:
        failed = sum(not outcome.ok for outcome in outcomes)
        raise RunFailed(f"{len(short)} of {len(studies)} studies are short of --trials {tune_settings.trials} after "
                        f"{failed} of {len(outcomes)} jobs failed ({', '.join(short[:3])}"
                        f"{' and more' if len(short) > 3 else ''}); completed trials are stored in the studies: run "
                        "the same command again to resume to exactly --trials")
    # Every study is complete: this writes the tuned-parameter files without training a trial, so on the CPU (a
    # login node without the jobs' GPUs may launch a --device cuda study).
    return run_studies(studies, plan.data, registry, store, resolve_device("cpu"), config.precision,
                       plan.fingerprints, progress=False)


def _short_studies(names: Sequence[str], trials: int, url: str, root: Path) -> list[str]:
    import optuna
    from optuna.trial import TrialState

    with store_faults(url, root):
        storage = open_storage(url, root)
        return [name for name in names
                if len(optuna.load_study(study_name=name, storage=storage).get_trials(
                    deepcopy=False, states=(TrialState.COMPLETE,))) < trials]
