"""``run`` and ``tune`` end to end, for the command line and for Python: plan every run, train, store, and rebuild
the pages of the results directory. Nothing here prints tables or chooses exit statuses: the caller does."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pmrl_bench.device import resolve_device
from pmrl_bench.errors import Interrupted
from pmrl_bench.leaderboard.build import ensure_writable
from pmrl_bench.leaderboard.rebuild import rebuild_leaderboards
from pmrl_bench import plugins
from pmrl_bench.registry import Registry
from pmrl_bench.results import ResultStore, RunResult
from pmrl_bench.runner import distributed
from pmrl_bench.runner.executor import collect_versions
from pmrl_bench.runner.interrupt import signal_name, stop_signals_interrupt
from pmrl_bench.runner.jobs import resolve_jobs
from pmrl_bench.runner.summary import SweepSummary
from pmrl_bench.runner.sweep import execute_sweep
from pmrl_bench.runner.sweep_plan import SweepConfig, SweepPlan, plan_sweep
from pmrl_bench.stability import default_monitors
from pmrl_bench.tracking import ReporterOpener
from pmrl_bench.tuning.records import TunedParams
from pmrl_bench.tuning.study import TuneSettings, run_studies
from pmrl_bench.tuning.study_plan import apply_tuned, plan_tuning


@dataclass
class BenchmarkRun:
    """What a ``run`` did: its plan, the sweep's counts, the pages it wrote and the results of its runs."""

    plan: SweepPlan
    summary: SweepSummary
    pages: list[Path] = field(default_factory=list)  # empty on a torchrun rank other than 0
    results: list[RunResult] = field(default_factory=list)  # the stored result of every planned run that has one
    main_process: bool = True


def run_benchmark(config: SweepConfig, results_dir: Path, leaderboard_dir: Path, *, registry: Registry | None = None,
                  tuned: bool = False, params_from: Sequence[Path] = (), log: Sequence[str] = ()) -> BenchmarkRun:
    """Check every input, train every planned run that is not done yet, then rebuild the pages.

    ``tuned``/``params_from``: train each objective with its tuned parameters (``run --tuned``,
    ``--params-from``); ``log``: the reporters to send training curves and results to (``run --log``).
    """
    manager = plugins.MANAGER  # looked up per call: tests and embedders may swap it
    registry = registry if registry is not None else manager.registry
    opener = ReporterOpener(log, manager.reporters(require=log), results_dir) if log else None  # before anything trains
    try:
        plan = plan_sweep(config, registry)
        if tuned or params_from:
            plan = apply_tuned(plan, results_dir, list(params_from), use_results=tuned, registry=registry)
        store = ResultStore(results_dir)
        ensure_writable(leaderboard_dir, "--leaderboard")  # like the results directory: before training
        summary = execute_sweep(plan, config, registry, store, collect_versions(manager.versions()),
                                default_monitors, opener)
    finally:
        if opener is not None:
            opener.close_unused()
    distributed.shutdown()
    if not distributed.from_environment().is_main:  # under torchrun, rank 0 writes the pages
        return BenchmarkRun(plan, summary, main_process=False)
    pages = rebuild_leaderboards(results_dir, leaderboard_dir,
                                 after=f"the sweep finished ({len(plan.specs)} runs, results saved)").pages
    results = [r for s in plan.specs if (r := store.existing(s.task, s.objective, s.config_id, s.seed))]
    return BenchmarkRun(plan, summary, pages, results)


def tune_benchmark(config: SweepConfig, settings: TuneSettings, results_dir: Path, *,
                   registry: Registry | None = None) -> list[tuple[Path | None, TunedParams]]:
    """One study per (task, objective, protocol), each resumed to exactly ``settings.trials`` completed trials;
    the tuned-parameter file written for each, with its record (None: no successful trial, so no file)."""
    registry = registry if registry is not None else plugins.MANAGER.registry
    store = ResultStore(results_dir)
    studies, plan = plan_tuning(config, settings, registry, store.root)
    store.ensure_writable()
    device = resolve_device(config.device)
    try:
        with stop_signals_interrupt():
            jobs = resolve_jobs(config.jobs, device, settings.trials, config.threads)
            return run_studies(studies, plan.data, registry, store, device, config.precision, plan.fingerprints,
                               settings.progress, jobs=jobs, threads=config.threads)
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        raise Interrupted(signum, f"tuning interrupted by {signal_name(signum)}: completed trials are stored in "
                                  "the study; run the same command again to resume to exactly --trials") from None

