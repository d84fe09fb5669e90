"""The ``pmrl-bench`` command line: run, tune, show, list, plugins, leaderboard, compare.

Exit status: 0 success; 2 bad usage or bad input (one line on stderr); 1 a run or check failed.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from pmrl_bench import __version__
from pmrl_bench.errors import Interrupted, PmrlBenchError, RunFailed, UsageError

PROG = "pmrl-bench"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _names(value: str) -> list[str]:
    """``"a, b,a"`` -> ``["a", "b"]``: a name given twice is one run, not two (first occurrence kept)."""
    return list(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))


def _shard(value: str):  # noqa: ANN202 - a runner.shard.Shard; imported lazily to keep --help fast
    from pmrl_bench.runner.shard import parse_shard

    return parse_shard(value)


def _jobs(value: str) -> int | str:
    from pmrl_bench.runner.parallel import parse_jobs

    return parse_jobs(value)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Train and compare multimodal alignment objectives under one protocol.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = commands.add_parser("run", help="train and evaluate objectives on tasks, then write leaderboards")
    _add_training_options(run)
    run.add_argument("--seeds", type=int, default=3, help="number of seeds, 0..N-1 (default 3)")
    run.add_argument("--leaderboard", type=Path, default=Path("leaderboards"), help="leaderboard directory (default leaderboards/)")
    run.add_argument("--rerun", action="store_true", help="rerun runs whose valid result already exists")
    run.add_argument("--shard", type=_shard, metavar="I/N",
                     help="run only shard I of N (1-based) of the sweep; merge shards by copying result files")
    tuned = run.add_argument_group("tuned parameters (from 'pmrl-bench tune')")
    tuned.add_argument("--tuned", action="store_true",
                       help="train each objective with the best parameters of its study under RESULTS/_tuning "
                            "(the study must match the run's task, encoders, budget and protocol)")
    tuned.add_argument("--params-from", dest="params_from", action="append", default=[], type=Path, metavar="FILE",
                       help="a tuned-parameter file (RESULTS/_tuning/TASK/OBJECTIVE/ID.json) for its objective (repeatable)")
    run.add_argument("--json", action="store_true",
                     help="print a JSON summary on stdout (the human summary and tables go to stderr)")
    run.add_argument("--log", type=_names, default=[], metavar="REPORTER[,REPORTER]",
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
    _add_training_options(tune)
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

    show = commands.add_parser("show", help="a task's main result tables in the terminal (every task when none given)")
    show.add_argument("task", nargs="?", metavar="TASK", help="one task only")
    show.add_argument("--results", type=Path, default=Path("results"), help="result files directory (default results/)")
    show.add_argument("--json", action="store_true",
                      help="print a JSON summary on stdout (the tables go to stderr)")

    lister = commands.add_parser("list", help="registered components and the plugin behind each")
    lister.add_argument("kind", nargs="?", choices=["objectives", "encoders", "tasks"], help="one kind only")
    lister.add_argument("--params", action="store_true",
                        help="each component's parameters (for --set): type, default and meaning")
    lister.add_argument("--json", action="store_true", help="machine-readable output")

    plugins = commands.add_parser("plugins", help="installed plugins, their versions and what each registered")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")

    board = commands.add_parser("leaderboard", help="rebuild the markdown leaderboards from result files")
    board.add_argument("results", type=Path, metavar="RESULTS_DIR")
    board.add_argument("--out", type=Path, default=Path("leaderboards"), help="output directory (default leaderboards/)")
    board.add_argument("--check", action="store_true", help="exit 1 if the files on disk differ from what the results give")

    compare = commands.add_parser("compare", help="markdown of what moved between two results directories, with paired tests")
    compare.add_argument("old", type=Path, metavar="OLD_RESULTS")
    compare.add_argument("new", type=Path, metavar="NEW_RESULTS")
    compare.add_argument("--out", type=Path, metavar="FILE", help="write the markdown to FILE (default: standard output)")
    return parser


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    """What defines the runs of a sweep or a study: names, budget, device, parameters, protocol."""
    parser.add_argument("--objectives", type=_names, help="comma-separated objectives (default: every registered one)")
    parser.add_argument("--tasks", type=_names, help="comma-separated tasks (default: the default suite)")
    parser.add_argument("--steps", type=int, default=300, help="training steps per run (default 300)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    parser.add_argument("--dim", type=int, default=64, help="shared embedding dimension (default 64)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--results", type=Path, default=Path("results"), help="result files directory (default results/)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KIND.NAME.KEY=VALUE",
                        help="a component parameter, e.g. objective.pmrl.tau1=0.05 (repeatable)")
    parser.add_argument("--encoder", dest="encoders", action="append", default=[], metavar="MODALITY=NAME",
                        help="encoder for one modality instead of its kind's default (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                        help="encoders' autocast: auto = bf16 (fp16 if unsupported) on CUDA, fp32 on CPU (default auto)")
    parser.add_argument("--probe", default="torch", choices=["torch", "sklearn"],
                        help="classification probes: torch (on the run's device) or scikit-learn, the reference "
                             "(default torch)")
    parser.add_argument("--jobs", type=_jobs, default=1, metavar="N|auto",
                        help="train N runs (or trials) at once in worker processes; auto: one per GPU on CUDA, else "
                             "physical cores // --threads (default 1)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="torch intra-op threads of each run; results depend on it, so it stays the same whatever "
                             "--jobs is (default 1)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile each encoder's training step (on CUDA with CUDA graphs): fewer kernel "
                             "launches for small models; objectives stay eager; results match eager up to rounding")
    protocol = parser.add_argument_group("protocol: where the encoders start, and which state is evaluated")
    protocol.add_argument("--init", metavar="OBJECTIVE:STEPS",
                          help="warm start: train the encoders with OBJECTIVE for STEPS steps first (once per task and "
                               "seed, cached under RESULTS/_init), then every objective continues from those weights")
    protocol.add_argument("--init-lr", type=float, metavar="X", help="the init stage's learning rate (default: --lr)")
    protocol.add_argument("--init-set", dest="init_settings", action="append", default=[], metavar="KEY=VALUE",
                          help="a parameter of the init objective (repeatable)")
    protocol.add_argument("--init-checkpoint", type=Path, metavar="PATH",
                          help="start every objective from these encoder weights (a safetensors file, e.g. one of "
                               "RESULTS/_init)")
    protocol.add_argument("--select", dest="selection", default="last", choices=["last", "best"],
                          help="evaluate the last encoder state, or the best on the validation split by mean R@1, "
                               "checked every 25 steps (default last)")


def _sweep_config(args: argparse.Namespace, argv: Sequence[str], registry) -> "SweepConfig":  # noqa: F821
    """The SweepConfig that ``run`` and ``tune`` share, from their common options."""
    from pmrl_bench.params import parse_set_options
    from pmrl_bench.runner.spec import Budget
    from pmrl_bench.runner.sweep import SweepConfig

    encoders = {}
    for item in args.encoders:
        modality, sep, name = item.partition("=")
        if not sep or not modality or not name:
            raise UsageError(f"--encoder {item!r} is not MODALITY=NAME (e.g. m0=linear)")
        registry.get("encoder", name)
        encoders[modality] = name
    return SweepConfig(
        objectives=args.objectives if args.objectives is not None else _defaults(registry, "objective", "--objectives"),
        tasks=args.tasks if args.tasks is not None else _defaults(registry, "task", "--tasks"),
        seeds=getattr(args, "seeds", 1),
        budget=Budget(steps=args.steps, batch_size=args.batch_size, lr=args.lr, dim=args.dim),
        overrides=parse_set_options(args.settings),
        encoders=encoders,
        device=args.device,
        rerun=getattr(args, "rerun", False),
        progress=not args.no_progress,
        command=" ".join([PROG, *map(shlex.quote, argv)]),
        precision=args.precision,
        shard=getattr(args, "shard", None),
        init=args.init,
        init_lr=args.init_lr,
        init_settings=_key_values(args.init_settings, "--init-set"),
        init_checkpoint=args.init_checkpoint,
        selection=args.selection,
        probe=args.probe,
        jobs=args.jobs,
        threads=args.threads,
        compile=args.compile,
    )


def _warn_plugin_failures() -> None:
    from pmrl_bench.plugins import MANAGER

    for failure in MANAGER.failures:
        _say(f"warning: {failure.message()}")


def _cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from pmrl_bench.plugins import MANAGER
    from pmrl_bench.results import ResultStore
    from pmrl_bench.runner.sweep import collect_versions, execute_sweep, plan_sweep

    registry = MANAGER.registry
    _warn_plugin_failures()
    config = _sweep_config(args, argv, registry)
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
    written = _rebuild_leaderboards(args.results, args.leaderboard,
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
    from pmrl_bench.report.terminal import compact_tables, sweep_json, summarize

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


def _defaults(registry, kind: str, option: str) -> list[str]:  # noqa: ANN001 - a registry.Registry
    """Every objective, or the default tasks, less those whose plugin code cannot be imported (with a warning)."""
    names = registry.names(kind) if kind == "objective" else registry.default_tasks()
    usable, problems = registry.importable(kind, names)
    for problem in problems:
        _say(f"warning: {problem}; left out of this sweep (name it in {option} to make it an error)")
    return usable


def _key_values(items: Sequence[str], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} {item!r} is not KEY=VALUE (e.g. temperature=0.05)")
        out[key.strip()] = value
    return out


def _rebuild_leaderboards(results_dir: Path, out_dir: Path, check: bool = False, after: str = "") -> list[Path]:
    from pmrl_bench.runner.interrupt import interruptible

    rebuild = f"{PROG} leaderboard {shlex.quote(str(results_dir))} --out {shlex.quote(str(out_dir))}"

    def stopped(signal_name: str) -> str:
        return (f"interrupted by {signal_name} while {'checking' if check else 'rebuilding'} the leaderboards in "
                f"{out_dir}/{f' ({after})' if after else ''}: the result files are intact and each page is the "
                f"previous one or the new one; rebuild them with '{rebuild}'")

    with interruptible(stopped):
        return _rebuild(results_dir, out_dir, check, rebuild)


def _rebuild(results_dir: Path, out_dir: Path, check: bool, rebuild: str) -> list[Path]:
    from pmrl_bench.leaderboard import build_leaderboards, check_leaderboards, write_leaderboards
    from pmrl_bench.leaderboard.build import Skipped
    from pmrl_bench.results import ResultStore

    results, problems = ResultStore(results_dir).scan()
    for problem in problems:
        _say(f"warning: skipped {problem.path}: {problem.reason}")
    shown = [Skipped(p.path.relative_to(results_dir).as_posix(), p.reason.split(":")[0]) for p in problems]
    from pmrl_bench.tuning.records import scan_records

    tuning, bad_tuning = scan_records(results_dir)
    for path, reason in bad_tuning:
        _say(f"warning: skipped {path}: {reason}")
    pages = build_leaderboards(results, shown, tuning=tuning)
    if check:
        stale = check_leaderboards(out_dir, pages)
        if stale:
            raise RunFailed(f"leaderboards in {out_dir}/ are stale: {', '.join(stale)}; rerun '{rebuild}'")
        return []
    from pmrl_bench.results.locks import output_lock

    with output_lock(out_dir):  # two sweeps finishing at once must not interleave their page writes
        return write_leaderboards(out_dir, pages)


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    if not args.results.is_dir():
        raise UsageError(f"results directory {str(args.results)!r} does not exist")
    if not args.check:
        from pmrl_bench.leaderboard.build import ensure_writable

        ensure_writable(args.out, "--out")
    written = _rebuild_leaderboards(args.results, args.out, check=args.check)
    print(f"leaderboards in {args.out}/ are up to date" if args.check else f"wrote {len(written)} files to {args.out}/")
    return 0


def _cmd_tune(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from pmrl_bench.plugins import MANAGER
    from pmrl_bench.results import ResultStore
    from pmrl_bench.runner.device import resolve_device
    from pmrl_bench.tuning.plan import plan_tuning
    from pmrl_bench.tuning.study import TuneSettings, run_studies

    registry = MANAGER.registry
    _warn_plugin_failures()
    config = _sweep_config(args, argv, registry)
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


def _cmd_compare(args: argparse.Namespace) -> int:
    from pmrl_bench.leaderboard.compare import compare_directories

    text, problems = compare_directories(args.old, args.new)
    for problem in problems:
        print(f"{PROG}: warning: {problem}", file=sys.stderr)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        args.out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write --out {str(args.out)!r}: {exc.strerror or exc}; pass a file in an existing, "
                         "writable directory") from None
    print(f"wrote {args.out}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from pmrl_bench.report.terminal import main_tables, summarize, summary_json
    from pmrl_bench.results import ResultStore

    if not args.results.is_dir():
        raise UsageError(f"results directory {str(args.results)!r} does not exist; pass --results DIR or run "
                         "'pmrl-bench run' first")
    results, problems = ResultStore(args.results).scan()
    for problem in problems:
        print(f"{PROG}: warning: skipped {problem.path}: {problem.reason}", file=sys.stderr)
    if not results:
        raise UsageError(f"no result files in {args.results}/; run 'pmrl-bench run' first or pass --results DIR")
    if args.task is not None:
        available = sorted({r.task for r in results})
        if args.task not in available:
            raise UsageError(f"no results for task {args.task!r} in {args.results}/; tasks with results: "
                             f"{', '.join(available)}")
        results = [r for r in results if r.task == args.task]
    tasks = summarize(results, full=True)
    print(main_tables(tasks), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps({"results": str(args.results), "tasks": summary_json(tasks)}, indent=2))
    return 0


def _summary(component) -> str:
    """The registered description, else the factory's docstring; a factory that fails to import says so."""
    try:
        return component.summary()
    except PmrlBenchError as exc:
        return f"(unavailable: {exc})"


def _cmd_list(args: argparse.Namespace) -> int:
    from pmrl_bench.plugins import MANAGER

    registry = MANAGER.registry
    _warn_plugin_failures()
    kinds = [args.kind[:-1]] if args.kind else ["objective", "encoder", "task"]
    entries = [
        {
            "kind": c.kind, "name": c.name, "plugin": c.plugin, "distribution": c.distribution,
            "version": c.version, "description": _summary(c),
            **({"default_suite": bool(c.metadata.get("default_suite"))} if c.kind == "task" else {}),
            **({"modality_kinds": list(c.metadata.get("modality_kinds", ()))} if c.kind == "encoder" else {}),
        }
        for kind in kinds
        for c in registry.components(kind)  # type: ignore[arg-type]
    ]
    described = {}
    if args.params:
        from pmrl_bench.report.parameters import try_describe

        described = {(e["kind"], e["name"]): try_describe(registry.get(e["kind"], e["name"])) for e in entries}
        for e in entries:
            infos, problem = described[(e["kind"], e["name"])]
            e["params"] = None if problem else [i.as_json() for i in infos]
            if problem:
                e["params_error"] = problem
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    for kind in kinds:
        rows = [e for e in entries if e["kind"] == kind]
        print(f"{kind}s:")
        width = max((len(e["name"]) for e in rows), default=0)
        for e in rows:
            print(f"  {e['name']:<{width}}  [{e['plugin']}]  {e['description']}")
            if args.params:
                from pmrl_bench.report.parameters import parameter_table

                infos, problem = described[(e["kind"], e["name"])]
                print(f"    (parameters unavailable: {problem})" if problem else parameter_table(infos))
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    from pmrl_bench.plugins import MANAGER

    registry = MANAGER.registry
    reporters = MANAGER.reporters()
    _warn_plugin_failures()
    entries = []
    for info in MANAGER.plugins():
        registered = {
            kind + "s": [c.name for c in registry.components(kind) if c.plugin == info.name]  # type: ignore[arg-type]
            for kind in ("objective", "encoder", "task")
        }
        registered["reporters"] = [name for name, c in reporters.items() if c.plugin == info.name]
        entries.append({"name": info.name, "distribution": info.distribution, "version": info.version,
                        "builtin": info.builtin, "hooks": info.hooks, "registered": registered})
    failures = [vars(f) for f in MANAGER.failures]
    if args.json:
        print(json.dumps({"plugins": entries, "failures": failures}, indent=2))
        return 0
    for e in entries:
        what = "; ".join(f"{k}: {', '.join(v)}" for k, v in e["registered"].items() if v) or "nothing"
        origin = "built-in" if e["builtin"] else f"{e['distribution'] or 'in-process'} {e['version'] or ''}".strip()
        print(f"{e['name']} ({origin}): {what}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = None
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        if args.command == "run":
            return _cmd_run(args, argv)
        if args.command == "tune":
            return _cmd_tune(args, argv)
        if args.command == "leaderboard":
            return _cmd_leaderboard(args)
        if args.command == "show":
            return _cmd_show(args)
        if args.command == "list":
            return _cmd_list(args)
        if args.command == "compare":
            return _cmd_compare(args)
        return _cmd_plugins(args)
    except UsageError as exc:
        _say(f"error: {exc}")
        return 2
    except RunFailed as exc:
        _say(str(exc))
        return 1
    except PmrlBenchError as exc:
        _say(f"error: {exc}")
        return 1
    except Interrupted as exc:  # says what it interrupted: the sweep, the leaderboards, a plugin's import
        _say(exc.message)
        return exc.exit_status
    except KeyboardInterrupt:
        if getattr(args, "command", None) == "run":
            _say("interrupted; finished runs are saved and the next 'run' resumes the sweep")
        else:
            _say("interrupted by Ctrl-C")
        return 130


_LINE_BREAK = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def _say(message: str) -> None:
    """One line on stderr, whatever the message holds (a path with a newline in it stays on its line)."""
    print(f"{PROG}: {_LINE_BREAK.sub(lambda m: repr(m.group())[1:-1], message)}", file=sys.stderr)
