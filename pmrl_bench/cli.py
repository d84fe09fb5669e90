"""The ``pmrl-bench`` command line (contract v1): run, list, plugins, leaderboard.

Exit status: 0 success; 2 bad usage or bad input (one line on stderr); 1 a run or check failed.
"""

from __future__ import annotations

import argparse
import json
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
    return [part.strip() for part in value.split(",") if part.strip()]


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
    run.add_argument("--objectives", type=_names, help="comma-separated objectives (default: every registered one)")
    run.add_argument("--tasks", type=_names, help="comma-separated tasks (default: the default suite)")
    run.add_argument("--seeds", type=int, default=3, help="number of seeds, 0..N-1 (default 3)")
    run.add_argument("--steps", type=int, default=300, help="training steps per run (default 300)")
    run.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    run.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    run.add_argument("--dim", type=int, default=64, help="shared embedding dimension (default 64)")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    run.add_argument("--results", type=Path, default=Path("results"), help="result files directory (default results/)")
    run.add_argument("--leaderboard", type=Path, default=Path("leaderboards"), help="leaderboard directory (default leaderboards/)")
    run.add_argument("--set", dest="settings", action="append", default=[], metavar="KIND.NAME.KEY=VALUE",
                     help="a component parameter, e.g. objective.pmrl.tau1=0.05 (repeatable)")
    run.add_argument("--encoder", dest="encoders", action="append", default=[], metavar="MODALITY=NAME",
                     help="encoder for one modality instead of its kind's default (repeatable)")
    run.add_argument("--rerun", action="store_true", help="rerun runs whose valid result already exists")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                     help="encoders' autocast: auto = bf16 (fp16 if unsupported) on CUDA, fp32 on CPU (default auto)")
    run.add_argument("--shard", type=_shard, metavar="I/N",
                     help="run only shard I of N (1-based) of the sweep; merge shards by copying result files")
    run.add_argument("--jobs", type=_jobs, default=1, metavar="N|auto",
                     help="train N runs at once in worker processes; auto: one per GPU on CUDA, else physical cores "
                          "// --threads (default 1)")
    run.add_argument("--compile", action="store_true",
                     help="torch.compile each encoder's training step (on CUDA with CUDA graphs): fewer kernel "
                          "launches for small models; objectives stay eager; results match eager up to rounding")
    run.add_argument("--threads", type=int, default=1, metavar="N",
                     help="torch intra-op threads of each run; results depend on it, so it stays the same whatever "
                          "--jobs is (default 1)")
    protocol = run.add_argument_group("protocol: where the encoders start, and which state is evaluated")
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
    run.add_argument("--probe", default="torch", choices=["torch", "sklearn"],
                     help="classification probes: torch (on the run's device) or scikit-learn, the reference (default torch)")

    lister = commands.add_parser("list", help="registered components and the plugin behind each")
    lister.add_argument("kind", nargs="?", choices=["objectives", "encoders", "tasks"], help="one kind only")
    lister.add_argument("--json", action="store_true", help="machine-readable output")

    plugins = commands.add_parser("plugins", help="installed plugins, their versions and what each registered")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")

    board = commands.add_parser("leaderboard", help="rebuild the markdown leaderboards from result files")
    board.add_argument("results", type=Path, metavar="RESULTS_DIR")
    board.add_argument("--out", type=Path, default=Path("leaderboards"), help="output directory (default leaderboards/)")
    board.add_argument("--check", action="store_true", help="exit 1 if the files on disk differ from what the results give")
    return parser


def _warn_plugin_failures() -> None:
    from pmrl_bench.plugins import MANAGER

    for failure in MANAGER.failures:
        print(f"{PROG}: warning: {failure.message()}", file=sys.stderr)


def _cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from pmrl_bench.params import parse_set_options
    from pmrl_bench.plugins import MANAGER
    from pmrl_bench.results import ResultStore
    from pmrl_bench.runner.spec import Budget
    from pmrl_bench.runner.sweep import SweepConfig, collect_versions, execute_sweep, plan_sweep

    registry = MANAGER.registry
    _warn_plugin_failures()
    encoders = {}
    for item in args.encoders:
        modality, sep, name = item.partition("=")
        if not sep or not modality or not name:
            raise UsageError(f"--encoder {item!r} is not MODALITY=NAME (e.g. m0=linear)")
        registry.get("encoder", name)
        encoders[modality] = name
    config = SweepConfig(
        objectives=args.objectives if args.objectives is not None else registry.names("objective"),
        tasks=args.tasks if args.tasks is not None else registry.default_tasks(),
        seeds=args.seeds,
        budget=Budget(steps=args.steps, batch_size=args.batch_size, lr=args.lr, dim=args.dim),
        overrides=parse_set_options(args.settings),
        encoders=encoders,
        device=args.device,
        rerun=args.rerun,
        progress=not args.no_progress,
        command=" ".join([PROG, *map(shlex.quote, argv)]),
        precision=args.precision,
        shard=args.shard,
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
    plan = plan_sweep(config, registry)
    store = ResultStore(args.results)
    summary = execute_sweep(plan, config, registry, store, collect_versions(MANAGER.versions()))
    from pmrl_bench.runner import distributed

    distributed.shutdown()
    if not distributed.from_environment().is_main:  # under torchrun, rank 0 reports and writes leaderboards
        return 0 if summary.all_ok else 1
    written = _rebuild_leaderboards(args.results, args.leaderboard)
    inits = ""
    if summary.init_trained or summary.init_reused:
        inits = f"; init stages: {summary.init_trained} trained, {summary.init_reused} reused"
    lost = f", {len(summary.lost)} not trained (worker died)" if summary.lost else ""
    print(
        f"{len(plan.specs)} runs{f' (shard {args.shard})' if args.shard else ''}: {summary.ok} ok, {summary.diverged} diverged, {summary.failed} failed, "
        f"{summary.skipped} already done{summary.skipped_note}{lost}{inits}; results in {args.results}/, leaderboards in {args.leaderboard}/ "
        f"({len(written)} files)"
    )
    if summary.lost:
        named = ", ".join(summary.lost[:3]) + (f" and {len(summary.lost) - 3} more" if len(summary.lost) > 3 else "")
        raise RunFailed(f"{len(summary.lost)} run(s) were not trained because worker processes died ({named}); "
                        "run the same command again to train them")
    if not summary.all_ok:
        raise RunFailed(f"{summary.diverged_total} run(s) diverged and {summary.failed_total} failed; see the result files' 'error'")
    return 0


def _key_values(items: Sequence[str], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} {item!r} is not KEY=VALUE (e.g. temperature=0.05)")
        out[key.strip()] = value
    return out


def _rebuild_leaderboards(results_dir: Path, out_dir: Path, check: bool = False) -> list[Path]:
    from pmrl_bench.leaderboard import build_leaderboards, check_leaderboards, write_leaderboards
    from pmrl_bench.results import ResultStore

    results, problems = ResultStore(results_dir).scan()
    for problem in problems:
        print(f"{PROG}: warning: skipped {problem.path}: {problem.reason}", file=sys.stderr)
    shown = [f"`{p.path.relative_to(results_dir).as_posix()}`: {p.reason.split(':')[0]}" for p in problems]
    pages = build_leaderboards(results, shown)
    if check:
        stale = check_leaderboards(out_dir, pages)
        if stale:
            raise RunFailed(f"leaderboards in {out_dir}/ are stale: {', '.join(stale)}; rerun 'pmrl-bench leaderboard {results_dir} --out {out_dir}'")
        return []
    from pmrl_bench.results.locks import output_lock

    with output_lock(out_dir):  # two sweeps finishing at once must not interleave their page writes
        return write_leaderboards(out_dir, pages)


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    if not args.results.is_dir():
        raise UsageError(f"results directory {str(args.results)!r} does not exist")
    written = _rebuild_leaderboards(args.results, args.out, check=args.check)
    print(f"leaderboards in {args.out}/ are up to date" if args.check else f"wrote {len(written)} files to {args.out}/")
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
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    for kind in kinds:
        rows = [e for e in entries if e["kind"] == kind]
        print(f"{kind}s:")
        width = max((len(e["name"]) for e in rows), default=0)
        for e in rows:
            print(f"  {e['name']:<{width}}  [{e['plugin']}]  {e['description']}")
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    from pmrl_bench.plugins import MANAGER

    registry = MANAGER.registry
    _warn_plugin_failures()
    entries = []
    for info in MANAGER.plugins():
        registered = {
            kind + "s": [c.name for c in registry.components(kind) if c.plugin == info.name]  # type: ignore[arg-type]
            for kind in ("objective", "encoder", "task")
        }
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
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        if args.command == "run":
            return _cmd_run(args, argv)
        if args.command == "leaderboard":
            return _cmd_leaderboard(args)
        if args.command == "list":
            return _cmd_list(args)
        return _cmd_plugins(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except RunFailed as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except PmrlBenchError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except Interrupted as exc:  # the sweep says what finished and what remains
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; finished runs are saved and the next 'run' resumes the sweep", file=sys.stderr)
        return 130
