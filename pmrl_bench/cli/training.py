"""``run`` and ``tune``: the commands that train."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pmrl_bench.cli.launcher import add_launcher_options, job_argv, launcher_settings
from pmrl_bench.cli.options import add_training_options, names, seed_batch, shard, sweep_config
from pmrl_bench.cli.output import emit_json, warn_plugin_failures, write
from pmrl_bench.console import escape
from pmrl_bench.errors import RunFailed
from pmrl_bench.tuning.space import DEFAULT_TRIAL_SEED, DEFAULT_TRIALS

if TYPE_CHECKING:
    from pmrl_bench.runner.summary import SweepSummary
    from pmrl_bench.tuning.records import TunedParams


def add_parsers(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="train and evaluate objectives on tasks, then write leaderboards")
    add_training_options(run)
    run.add_argument("--seeds", type=int, default=3, help="number of seeds, 0..N-1 (default 3)")
    run.add_argument("--leaderboard", type=Path, default=Path("leaderboards"),
                     help="leaderboard directory (default leaderboards/)")
    run.add_argument("--rerun", action="store_true", help="rerun runs whose valid result already exists")
    run.add_argument("--seed-batch", type=seed_batch, default=1, metavar="N|auto",
                     help="train up to N seeds of a configuration as one model (auto: all of them); each seed keeps "
                          "its own result file; components that do not support it train one seed at a time "
                          "(default 1)")
    run.add_argument("--shard", type=shard, metavar="I/N",
                     help="run only shard I of N (1-based) of the sweep; merge shards by copying result files")
    add_launcher_options(run, "--shard-count", "with --launcher: the number of jobs; job i runs this command with "
                                               "--shard i/N (no more than the sweep's runs)")
    tuned = run.add_argument_group("tuned parameters (from 'pmrl-bench tune')")
    tuned.add_argument("--tuned", action="store_true",
                       help="train each objective with the best parameters of its study under RESULTS/_tuning "
                            "(the study must match the run's task, encoders, budget and protocol)")
    tuned.add_argument("--params-from", dest="params_from", action="append", default=[], type=Path, metavar="FILE",
                       help="a tuned-parameter file (RESULTS/_tuning/TASK/OBJECTIVE/ID.json) for its objective "
                            "(repeatable)")
    run.add_argument("--json", action="store_true",
                     help="print a JSON summary on stdout (the human summary and tables go to stderr)")
    run.add_argument("--log", type=names, default=[], metavar="REPORTER[,REPORTER]",
                     help="experiment tracking: send training scalars and results to these reporters, e.g. "
                          "tensorboard (files under RESULTS/_logs/); see 'pmrl-bench plugins'")

    tune = commands.add_parser(
        "tune", help="equal-budget hyper-parameter search per (task, objective, protocol) on the validation split",
        description="One Optuna study per (task, objective, protocol): the same number of completed trials, the same "
                    "sampler and seed, and the same training budget per trial for every objective; the learning rate "
                    "and weight decay are searched for all alike, beside each objective's declared search space. "
                    "Trials are scored on the validation split (the test split is never read); a trial that diverges "
                    "or fails scores 0 and counts. Studies persist (SQLite under RESULTS/_tuning by default) and "
                    "resume to exactly --trials; the best parameters are written to RESULTS/_tuning/TASK/OBJECTIVE/"
                    "ID.json for 'pmrl-bench run --tuned'.")
    add_training_options(tune)
    tune.add_argument("--trials", type=int, default=DEFAULT_TRIALS,
                      help=f"completed trials per study, the same for every objective; trial 0 trains the published "
                           f"defaults (default {DEFAULT_TRIALS})")
    tune.add_argument("--sampler", default="random", choices=["random", "tpe"],
                      help="random (default: strict fairness, independent draws) or tpe (Optuna's TPE)")
    tune.add_argument("--sampler-seed", type=int, default=0, help="seed of the sampler (default 0)")
    tune.add_argument("--seed", dest="trial_seed", type=int, default=DEFAULT_TRIAL_SEED,
                      help=f"training seed of every trial, kept apart from the test seeds of `run` "
                           f"(default {DEFAULT_TRIAL_SEED})")
    tune.add_argument("--metric", default="mean_R@1",
                      help="validation metric to maximise, the same for every objective: mean_R@1 (default; cosine "
                           "R@1 over all directions), mean_R@5, mean_R@10, or a probe such as linear:fused")
    tune.add_argument("--storage", metavar="URL",
                      help="where the studies live, shared by many processes or machines: an Optuna RDB storage URL, "
                           "or a journal file (journal:///PATH, or a path ending in .log) that jobs on many machines "
                           "share over a network file system (default: SQLite at RESULTS/_tuning/studies.db)")
    add_launcher_options(tune, "--job-count", "with --launcher: the number of jobs, each running this command and "
                                              "taking trials of the same studies (no more than --trials)")


def cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from pmrl_bench.benchmark import run_benchmark
    from pmrl_bench.plugins import MANAGER
    from pmrl_bench.report.terminal import compact_tables, summarize, sweep_json

    registry = MANAGER.registry  # collecting it is what reveals a plugin that fails to register
    if args.log:
        MANAGER.reporters(require=args.log)  # a reporter name two plugins registered: named here, before anything
    config = sweep_config(args, argv, registry)  # a name that clashes is an error, and then the only line
    warn_plugin_failures()
    launcher = launcher_settings(args, "--shard-count")
    if launcher is not None:  # the same command as shard jobs, then the pages of everything they wrote
        from pmrl_bench.launch import launch_run

        done = launch_run(config, args.results, args.leaderboard, launcher, job_argv(argv, "--shard-count"),
                          registry=registry, tuned=args.tuned, params_from=args.params_from)
    else:
        done = run_benchmark(config, args.results, args.leaderboard, registry=registry, tuned=args.tuned,
                             params_from=args.params_from, log=args.log)
    summary = done.summary
    if not done.main_process:  # under torchrun, rank 0 reports
        return 0 if summary.all_ok else 1
    human = sys.stderr if args.json else sys.stdout  # with --json, stdout holds the JSON alone
    write(escape(summary_line(summary, len(done.plan.specs), args, len(done.pages))), file=human)  # one line
    tasks = summarize(done.results)
    if tasks:
        write(f"\n{compact_tables(tasks)}", file=human)
    if args.json:
        emit_json(sweep_json(summary, tasks, args.results, args.leaderboard))
    if summary.lost:
        named = ", ".join(summary.lost[:3]) + (f" and {len(summary.lost) - 3} more" if len(summary.lost) > 3 else "")
        died = "their jobs failed" if args.launcher else "worker processes died"
        raise RunFailed(f"{len(summary.lost)} run(s) were not trained because {died} ({named}); "
                        "run the same command again to train them")
    if not summary.all_ok:
        raise RunFailed(f"{summary.diverged_total} run(s) diverged and {summary.failed_total} failed; see the "
                        "result files' 'error'")
    return 0


def summary_line(summary: SweepSummary, planned: int, args: argparse.Namespace, pages: int) -> str:
    """The line ``run`` ends with: what ran, what was already done, and where results and pages are."""
    inits = ""
    if summary.init_trained or summary.init_reused:
        inits = f"; init stages: {len(summary.init_trained)} trained, {len(summary.init_only_reused)} reused"
    lost = f", {len(summary.lost)} not trained (worker died)" if summary.lost else ""
    # runs whose objective does not accept the task's number of modalities
    skipped = f", {summary.not_applicable} not applicable" if summary.not_applicable else ""
    shard = f" (shard {args.shard})" if args.shard else ""
    if getattr(args, "launcher", None):
        shard = f" ({args.launch_count} {args.launcher} jobs)"
    return (f"{planned} runs{shard}: {summary.ok} ok, {summary.diverged} diverged, {summary.failed} failed{skipped}, "
            f"{summary.skipped} already done{summary.skipped_note}{lost}{inits}; results in {args.results}/, "
            f"leaderboards in {args.leaderboard}/ ({pages} files)")


def cmd_tune(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from pmrl_bench.benchmark import tune_benchmark
    from pmrl_bench.plugins import MANAGER
    from pmrl_bench.results.store import TUNING_DIR
    from pmrl_bench.tuning.study import TuneSettings

    registry = MANAGER.registry
    config = sweep_config(args, argv, registry)  # a name that clashes is an error, and then the only line
    warn_plugin_failures()
    settings = TuneSettings(trials=args.trials, sampler=args.sampler, sampler_seed=args.sampler_seed,
                            trial_seed=args.trial_seed, metric=args.metric, storage=args.storage,
                            progress=not args.no_progress)
    launcher = launcher_settings(args, "--job-count")
    if launcher is not None:  # jobs take the trials; this process writes the tuned-parameter files
        from pmrl_bench.launch import launch_tune

        written = launch_tune(config, settings, args.results, launcher, job_argv(argv, "--job-count"),
                              registry=registry)
    else:
        written = tune_benchmark(config, settings, args.results, registry=registry)
    for _, record in written:
        write(escape(f"{record.task}/{record.objective} [{record.protocol}]: {len(record.trials)} trials; "
                     f"best {best_trial(record)}"))
    failed = [f"{record.task}/{record.objective}" for path, record in written if path is None]
    if failed and len(failed) == len(written):  # nothing --tuned could use: the usual line would promise too much
        write(escape(f"{len(written)} studies; no tuned parameters written in {args.results}/{TUNING_DIR}/"))
    else:
        done = f"{len(written) - len(failed)} of {len(written)}" if failed else f"{len(written)}"
        write(escape(f"{done} studies; tuned parameters in {args.results}/{TUNING_DIR}/; "
                     "train with them on the test seeds: pmrl-bench run ... --tuned"))
    if failed:  # a tune that found nothing that trains did not succeed
        raise RunFailed(f"every trial failed or diverged in {len(failed)} of {len(written)} studies "
                        f"({', '.join(failed[:3])}{' and more' if len(failed) > 3 else ''}): no tuned-parameter "
                        "file for them; see the lines above for the first error of each")
    return 0


def best_trial(record: TunedParams) -> str:
    """``mean_R@1 0.4123 (trial 6) with lr=0.001, tau1=0.44``, or ``none``."""
    best = record.best
    if best is None:
        return "none"
    values = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                       for part in best.params.values() for k, v in part.items())
    return f"{record.metric} {best.value:.4f} (trial {best.number}) with {values}"
