"""The parser and the dispatch: each command's options and work live in its own module (``training``: run and
tune; ``results``: leaderboard, show, compare and verdicts; ``catalog``: list and plugins).

Exit status: 0 success; 2 bad usage or bad input (one line on stderr); 1 a run or check failed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from pmrl_bench._version import __version__
from pmrl_bench.cli import catalog, results, training
from pmrl_bench.cli.output import PROG, json_stdout, plugin_problems, say
from pmrl_bench.console import shorten_words
from pmrl_bench.errors import Interrupted, PmrlBenchError, RunFailed, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2, and help ends with the plugin problems
    (a plugin that failed, a name two plugins registered), so ``--help`` works and shows them whatever they are."""

    def error(self, message: str) -> NoReturn:
        # argparse echoes the offending value whole; a 10 000-character one is cut to a readable length
        raise UsageError(f"{shorten_words(message)} (see '{self.prog} --help')")

    def format_help(self) -> str:
        return super().format_help() + plugin_problems()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Train and compare multimodal alignment objectives under one protocol.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    training.add_parsers(commands)
    results.add_parsers(commands)
    catalog.add_parsers(commands)
    return parser


def _dispatch(args: argparse.Namespace, argv: Sequence[str]) -> int:
    if args.command == "run":
        return training.cmd_run(args, argv)
    if args.command == "tune":
        return training.cmd_tune(args, argv)
    if args.command == "leaderboard":
        return results.cmd_leaderboard(args)
    if args.command == "show":
        return results.cmd_show(args)
    if args.command == "list":
        return catalog.cmd_list(args)
    if args.command == "compare":
        return results.cmd_compare(args)
    if args.command == "verdicts":
        return results.cmd_verdicts(args)
    return catalog.cmd_plugins(args)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = None
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        with json_stdout(bool(getattr(args, "json", False))):  # --json: stdout holds the JSON document alone
            return _dispatch(args, argv)
    except UsageError as exc:
        say(f"error: {exc}")
        return 2
    except RunFailed as exc:
        say(str(exc))
        return 1
    except PmrlBenchError as exc:
        say(f"error: {exc}")
        return 1
    except Interrupted as exc:  # says what it interrupted: the sweep, the leaderboards, a plugin's import
        say(exc.message)
        return exc.exit_status
    except KeyboardInterrupt:
        if getattr(args, "command", None) == "run":
            say("interrupted; finished runs are saved and the next 'run' resumes the sweep")
        else:
            say("interrupted by Ctrl-C")
        return 130
