"""Execute a planned sweep: every run attempted once by a :class:`~pmrl_bench.runner.executor.RunExecutor`, in this
process or in worker processes (``--jobs``); resumable, shareable, interruptible.

Safe to interrupt at any point and to run several times at once into one results directory:

* each run is claimed with an OS file lock before it trains; a run another process holds is deferred, and
  waited for at the end, so concurrent sweeps share the work instead of duplicating it;
* a result is written atomically only after its run finished, so a kill leaves no partial result;
* Ctrl-C, SIGTERM and SIGHUP raise :class:`~pmrl_bench.errors.Interrupted` saying what finished and what remains.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from tqdm.auto import tqdm

from pmrl_bench.device import autocast_dtype, resolve_device
from pmrl_bench.errors import Interrupted, UsageError
from pmrl_bench.registry import Registry
from pmrl_bench.results import ResultStore
from pmrl_bench.runner import distributed
from pmrl_bench.runner.executor import MonitorFactory, RunExecutor, RunReporters
from pmrl_bench.runner.interrupt import stop_signals_interrupt
from pmrl_bench.runner.jobs import resolve_jobs, run_threads, seed_groups
from pmrl_bench.runner.parallel import execute_parallel
from pmrl_bench.runner.summary import SweepSummary, interrupted_message
from pmrl_bench.runner.sweep_plan import SweepConfig, SweepPlan

ReportersFactory = Callable[[], RunReporters]


def execute_sweep(
    plan: SweepPlan,
    config: SweepConfig,
    registry: Registry,
    store: ResultStore,
    versions: dict[str, Any],
    monitor_factory: MonitorFactory,
    reporters: ReportersFactory | None = None,
) -> SweepSummary:
    """Run every planned run, skipping valid existing results unless ``config.rerun``. A failing run never stops
    the sweep.

    ``monitor_factory`` gives each run its fresh training monitors (``pmrl_bench.stability.default_monitors`` for
    the stability block of the result files). ``reporters`` (``run --log``), when given, opens the experiment
    trackers: once here, or once in each worker process with ``--jobs``, which must then be able to pickle it.
    """
    device = resolve_device(config.device)
    autocast_dtype(device, config.precision)  # bad --precision fails before anything trains
    world = distributed.from_environment()  # several processes when launched by torchrun
    distributed.check_batch_size(world, config.budget.batch_size)
    device = distributed.initialise(world, device)
    if config.compile and world.enabled:
        raise UsageError("--compile is for one process per run; under torchrun leave it out")
    store.ensure_writable()
    jobs = resolve_jobs(config.jobs, device, len(plan.specs), config.threads)
    if jobs > 1:
        if world.enabled:
            raise UsageError("--jobs runs several runs at once in one process tree; under torchrun every process "
                             "already trains the same run: drop --jobs or torchrun")
        with run_threads(config.threads):
            return execute_parallel(plan, config, registry, store, versions, monitor_factory, device, jobs,
                                    reporters)
    opened = reporters() if reporters is not None and world.is_main else None
    executor = RunExecutor(plan, config, registry, store, versions, monitor_factory, device, world, opened)
    try:
        return _execute_serial(plan, config, executor)
    finally:
        if opened is not None:
            opened.close()


def _execute_serial(plan: SweepPlan, config: SweepConfig, executor: RunExecutor) -> SweepSummary:
    """Attempt every run in order in this process, the seeds of a configuration together (``--seed-batch``);
    runs another process holds are waited for at the end."""
    summary = SweepSummary(planned=len(plan.specs))
    groups = seed_groups([spec.config_id for spec in plan.specs], config.seed_batch)
    bar = tqdm(total=len(plan.specs), desc="sweep", unit="run", disable=not config.progress or None)
    with run_threads(config.threads), stop_signals_interrupt():
        try:
            deferred = []
            for group in groups:
                reports, held = executor.attempt_seeds([plan.specs[i] for i in group], wait=False)
                deferred += held  # another process is training them right now
                for report in reports:
                    summary.add(report)
                bar.update(len(reports))
            for spec in deferred:
                report = executor.attempt(spec, wait=True)
                assert report is not None  # waiting never defers
                summary.add(report)
                bar.update(1)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP via stop_signals_interrupt
            signum = getattr(exc, "signum", signal.SIGINT)
            raise Interrupted(signum, interrupted_message(signum, summary, executor.running,
                                                          executor.store.root)) from None
        finally:
            bar.close()
    return summary
