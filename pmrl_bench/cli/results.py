"""``leaderboard``, ``show``, ``compare`` and ``verdicts``: the commands that read result files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pmrl_bench.cli.options import names
from pmrl_bench.cli.output import emit_json, say, write
from pmrl_bench.errors import UsageError
from pmrl_bench.fsutil import is_directory


def add_parsers(commands: argparse._SubParsersAction) -> None:
    show = commands.add_parser("show", help="a task's main result tables in the terminal (every task when none given)")
    show.add_argument("task", nargs="?", metavar="TASK", help="one task only")
    show.add_argument("--results", type=Path, default=Path("results"), help="result files directory (default results/)")
    show.add_argument("--json", action="store_true",
                      help="print a JSON summary on stdout (the tables go to stderr)")

    board = commands.add_parser("leaderboard", help="rebuild the markdown leaderboards from result files")
    board.add_argument("results", type=Path, metavar="RESULTS_DIR")
    board.add_argument("--out", type=Path, default=Path("leaderboards"),
                       help="output directory (default leaderboards/)")
    board.add_argument("--check", action="store_true",
                       help="exit 1 if the files on disk differ from what the results give")
    board.add_argument("--references", type=names, metavar="OBJECTIVES",
                       help="comma-separated reference objectives of verdicts.md (default infonce,anchor,gram)")
    board.add_argument("--modality-sweep", type=Path, metavar="DIR",
                       help="results of the same configurations at other numbers of modalities: adds "
                            "modality-scaling.md and its plot")

    verdicts = commands.add_parser("verdicts", help="the planned comparisons against the reference objectives: "
                                                    "seed-level tests, one Holm correction over them all")
    verdicts.add_argument("results", type=Path, metavar="RESULTS_DIR")
    verdicts.add_argument("--references", type=names, metavar="OBJECTIVES",
                          help="comma-separated reference objectives (default infonce,anchor,gram)")
    verdicts.add_argument("--json", action="store_true", help="print verdicts.json on stdout instead of the table")

    compare = commands.add_parser("compare",
                                  help="markdown of what moved between two results directories, with paired tests")
    compare.add_argument("old", type=Path, metavar="OLD_RESULTS")
    compare.add_argument("new", type=Path, metavar="NEW_RESULTS")
    compare.add_argument("--out", type=Path, metavar="FILE",
                         help="write the markdown to FILE (default: standard output)")


def cmd_leaderboard(args: argparse.Namespace) -> int:
    if not is_directory(args.results):
        raise UsageError(f"results directory {str(args.results)!r} does not exist")
    from pmrl_bench.leaderboard.build import ensure_writable
    from pmrl_bench.leaderboard.rebuild import rebuild_leaderboards

    if not args.check:
        ensure_writable(args.out, "--out")
    if args.modality_sweep is not None and not is_directory(args.modality_sweep):
        raise UsageError(f"--modality-sweep {str(args.modality_sweep)!r} is not a results directory; pass the "
                         "directory `run --results DIR` wrote the other modality counts to")
    written = rebuild_leaderboards(args.results, args.out, check=args.check, references=args.references,
                                   modality_sweep=args.modality_sweep)
    write(f"leaderboards in {args.out}/ are up to date" if args.check else
          f"leaderboards in {args.out}/: {len(written.pages)} files, {len(written.rewritten)} of them rewritten "
          "(the others already held their content)")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from pmrl_bench.report.terminal import main_tables, summarize, summary_json
    from pmrl_bench.results import ResultStore

    if not is_directory(args.results):
        raise UsageError(f"results directory {str(args.results)!r} does not exist; pass --results DIR or run "
                         "'pmrl-bench run' first")
    results, problems = ResultStore(args.results).scan()
    for problem in problems:
        say(f"warning: skipped {problem.path}: {problem.reason}")
    if not results:
        raise UsageError(f"no result files in {args.results}/; run 'pmrl-bench run' first or pass --results DIR")
    if args.task is not None:
        available = sorted({r.task for r in results})
        if args.task not in available:
            raise UsageError(f"no results for task {args.task!r} in {args.results}/; tasks with results: "
                             f"{', '.join(available)}")
        results = [r for r in results if r.task == args.task]
    tasks = summarize(results, full=True)
    write(main_tables(tasks), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        emit_json({"results": str(args.results), "tasks": summary_json(tasks)})
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from pmrl_bench.leaderboard.compare import compare_directories

    text, problems = compare_directories(args.old, args.new)
    for problem in problems:
        say(f"warning: {problem}")
    if args.out is None:  # the markdown as it is written to a file, but no control character reaches the terminal
        write(text, end="")
        return 0
    try:
        args.out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write --out {str(args.out)!r}: {exc.strerror or exc}; pass a file in an existing, "
                         "writable directory") from None
    write(f"wrote {args.out}")
    return 0


def cmd_verdicts(args: argparse.Namespace) -> int:
    import json

    from pmrl_bench.leaderboard.verdicts import (
        REFERENCES, check_references, planned_comparisons, verdicts_json, verdicts_page,
    )
    from pmrl_bench.results import ResultStore

    if not is_directory(args.results):
        raise UsageError(f"results directory {str(args.results)!r} does not exist; pass a directory of result files")
    results, problems = ResultStore(args.results).scan()
    for problem in problems:
        say(f"warning: skipped {problem.path}: {problem.reason}")
    if not results:
        raise UsageError(f"no result files in {args.results}/; pass a directory of result files")
    references = REFERENCES if args.references is None else args.references
    if args.references is not None:
        check_references(results, references)
    planned = planned_comparisons(results, references)
    if args.json:
        emit_json(json.loads(verdicts_json(planned, references)))
    else:
        write(verdicts_page(planned, references), end="")
    return 0
