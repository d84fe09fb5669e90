"""``run`` and ``tune``: the commands that train."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pmrl_bench.cli.options import add_training_options, names, shard, sweep_config
from pmrl_bench.cli.output import warn_plugin_failures
from pmrl_bench.cli.results import rebuild_leaderboards
from pmrl_bench.errors import Interrupted, RunFailed


def add_parsers(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="train and evaluate objectives on tasks, then write leaderboards")
    add_training_options(run)
    run.add_argument("--seeds", type=int, default=3, help="number of seeds, 0..N-1 (default 3)")
    run.add_argument("--leaderboard", type=Path, default=Path("leaderboards"), help="leaderboard directory (default leaderboards/)")
    run.add_argument("--rerun", action="store_true", help="rerun runs whose valid result already exists")
    run.add_argument("--shard", type=shard, metavar="I/N",
                     help="run only shard I of N (1-based) of the sweep; merge shards by copying result files")
    tuned = run.add_argument_group("tuned parameters (from 'pmrl-bench tune')")
    tuned.add_argument("--tuned", action="store_true",
                       help="train each objective with the best parameters of its study under RESULTS/_tuning "
                            "(the study must match the run's task, encoders, budget and protocol)")
    tuned.add_argument("--params-from", dest="params_from", action="append", default=[], type=Path, metavar="FILE",
                       help="a tuned-parameter file (RESULTS/_tuning/TASK/OBJECTIVE/ID.json) for its objective (repeatable)")
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
    tune.add_argument("--trials", type=int, required=True, help="completed trials per study, the same for every objective")
    tune.add_argument("--sampler", default="random", choices=["random", "tpe"],
                      help="random (default: strict fairness, independent draws) or tpe (Optuna's TPE)")
    tune.add_argument("--sampler-seed", type=int, default=0, help="seed of the sampler (default 0)")
    tune.add_argument("--seed", dest="trial_seed", type=int, default=0, help="training seed of every trial (default 0)")
    tune.add_argument("--metric", default="mean_R@1",
                      help="validation metric to maximise, the same for every objective: mean_R@1 (default; cosine "
                           "R@1 over all directions), mean_R@5, mean_R@10, or a probe such as linear:fused")
    tune.add_argument("--storage", metavar="URL",
                      help="an Optuna RDB storage URL shared by many processes or machines (default: SQLite at "
                           "RESULTS/_tuning/studies.db)")


def cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from pmrl_bench.plugins import MANAGER
    from pmrl_bench.results import ResultStore
    from pmrl_bench.runner.sweep import collect_versions, execute_sweep, plan_sweep

    registry = MANAGER.registry
    warn_plugin_failures()
    config = sweep_config(args, argv, registry)
    from pmrl_bench.reporting import SweepReporters

    reporters = SweepReporters.build(args.log, MANAGER.reporters(), args.results)  # before anything trains
    plan = plan_sweep(config, registry)
    if args.tuned or args.params_from:
        from pmrl_bench.tuning.plan import apply_tuned

        plan = apply_tuned(plan, args.results, args.params_from, use_results=args.tuned)
    store = ResultStore(args.results)
    from pmrl_bench.leaderboard.build import ensure_writable

    ensure_writable(args.leaderboard, "--leaderboard")  # like --results (checked as the sweep starts): before training
    summary = execute_sweep(plan, config, registry, store, collect_versions(MANAGER.versions()), reporters=reporters)
    from pmrl_bench.runner import distributed

    distributed.shutdown()
    if not distributed.from_environment().is_main:  # under torchrun, rank 0 reports and writes leaderboards
        return 0 if summary.all_ok else 1
    written = rebuild_leaderboards(args.results, args.leaderboard,
                                    after=f"the sweep finished ({len(plan.specs)} runs, results saved)")
    human = sys.stderr if args.json else sys.stdout  # with --json, stdout holds the JSON alone
    inits = ""
    if summary.init_trained or summary.init_reused:
        inits = f"; init stages: {summary.init_trained} trained, {summary.init_reused} reused"
    lost = f", {len(summary.lost)} not trained (worker died)" if summary.lost else ""
    print(
        f"{len(plan.specs)} runs{f' (shard {args.shard})' if args.shard else ''}: {summary.ok} ok, {summary.diverged} diverged, {summary.failed} failed, "
        f"{summary.skipped} already done{summary.skipped_note}{lost}{inits}; results in {args.results}/, leaderboards in {args.leaderboard}/ "
        f"({len(written)} files)", file=human
    )
    from pmrl_bench.report.terminal import compact_tables, summarize, sweep_json

    tasks = summarize([r for s in plan.specs if (r := store.existing(s.task, s.objective, s.config_id, s.seed))])
    if tasks:
        print(f"\n{compact_tables(tasks)}", file=human)
    if args.json:
        print(json.dumps(sweep_json(summary, tasks, args.results, args.leaderboard), indent=2))
    if summary.lost:
        named = ", ".join(summary.lost[:3]) + (f" and {len(summary.lost) - 3} more" if len(summary.lost) > 3 else "")
        raise RunFailed(f"{len(summary.lost)} run(s) were not trained because worker processes died ({named}); "
                        "run the same command again to train them")
    if not summary.all_ok:
        raise RunFailed(f"{summary.diverged_total} run(s) diverged and {summary.failed_total} failed; see the result files' 'error'")
    return 0


def cmd_tune(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from pmrl_bench.plugins import MANAGER
    from pmrl_bench.results import ResultStore
    from pmrl_bench.runner.device import resolve_device
    from pmrl_bench.tuning.plan import plan_tuning
    from pmrl_bench.tuning.study import TuneSettings, run_studies

    registry = MANAGER.registry
    warn_plugin_failures()
    config = sweep_config(args, argv, registry)
    settings = TuneSettings(trials=args.trials, sampler=args.sampler, sampler_seed=args.sampler_seed,
                            trial_seed=args.trial_seed, metric=args.metric, storage=args.storage,
                            progress=not args.no_progress)
    store = ResultStore(args.results)
    studies, plan = plan_tuning(config, settings, registry, store.root)
    store.ensure_writable()
    device = resolve_device(config.device)
    from pmrl_bench.runner.interrupt import stop_signals_interrupt

    try:
        with stop_signals_interrupt():
            from pmrl_bench.runner.parallel import resolve_jobs

            jobs = resolve_jobs(config.jobs, device, settings.trials, config.threads)
            written = run_studies(studies, plan.data, registry, store, device, config.precision, plan.fingerprints,
                                  settings.progress, jobs=jobs, threads=config.threads)
    except KeyboardInterrupt as exc:
        import signal as _signal

        signum = getattr(exc, "signum", _signal.SIGINT)
        raise Interrupted(signum, "tuning interrupted: completed trials are stored in the study; run the same "
                                  "command again to resume to exactly --trials") from None
    for path, record in written:
        best = record.best
        shown = "none" if best is None else f"{record.metric} {best.value:.4f} (trial {best.number}) with " + ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for part in best.params.values() for k, v in part.items())
        print(f"{record.task}/{record.objective} [{record.protocol}]: {len(record.trials)} trials; best {shown}")
    print(f"{len(written)} studies; tuned parameters in {store.root}/{'_tuning'}/; "
          "train with them on the test seeds: pmrl-bench run ... --tuned")
    return 0
