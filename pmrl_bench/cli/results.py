"""``leaderboard``, ``show`` and ``compare``: the commands that read result files."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from pmrl_bench.cli.output import PROG, say
from pmrl_bench.errors import RunFailed, UsageError


def add_parsers(commands: argparse._SubParsersAction) -> None:
    show = commands.add_parser("show", help="a task's main result tables in the terminal (every task when none given)")
    show.add_argument("task", nargs="?", metavar="TASK", help="one task only")
    show.add_argument("--results", type=Path, default=Path("results"), help="result files directory (default results/)")
    show.add_argument("--json", action="store_true",
                      help="print a JSON summary on stdout (the tables go to stderr)")

    board = commands.add_parser("leaderboard", help="rebuild the markdown leaderboards from result files")
    board.add_argument("results", type=Path, metavar="RESULTS_DIR")
    board.add_argument("--out", type=Path, default=Path("leaderboards"), help="output directory (default leaderboards/)")
    board.add_argument("--check", action="store_true", help="exit 1 if the files on disk differ from what the results give")

    compare = commands.add_parser("compare", help="markdown of what moved between two results directories, with paired tests")
    compare.add_argument("old", type=Path, metavar="OLD_RESULTS")
    compare.add_argument("new", type=Path, metavar="NEW_RESULTS")
    compare.add_argument("--out", type=Path, metavar="FILE", help="write the markdown to FILE (default: standard output)")


def rebuild_leaderboards(results_dir: Path, out_dir: Path, check: bool = False, after: str = "") -> list[Path]:
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
        say(f"warning: skipped {problem.path}: {problem.reason}")
    shown = [Skipped(p.path.relative_to(results_dir).as_posix(), p.reason.split(":")[0]) for p in problems]
    from pmrl_bench.tuning.records import scan_records

    tuning, bad_tuning = scan_records(results_dir)
    for path, reason in bad_tuning:
        say(f"warning: skipped {path}: {reason}")
    pages = build_leaderboards(results, shown, tuning=tuning)
    if check:
        stale = check_leaderboards(out_dir, pages)
        if stale:
            raise RunFailed(f"leaderboards in {out_dir}/ are stale: {', '.join(stale)}; rerun '{rebuild}'")
        return []
    from pmrl_bench.results.locks import output_lock

    with output_lock(out_dir):  # two sweeps finishing at once must not interleave their page writes
        return write_leaderboards(out_dir, pages)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    if not args.results.is_dir():
        raise UsageError(f"results directory {str(args.results)!r} does not exist")
    if not args.check:
        from pmrl_bench.leaderboard.build import ensure_writable

        ensure_writable(args.out, "--out")
    written = rebuild_leaderboards(args.results, args.out, check=args.check)
    print(f"leaderboards in {args.out}/ are up to date" if args.check else f"wrote {len(written)} files to {args.out}/")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
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


def cmd_compare(args: argparse.Namespace) -> int:
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
