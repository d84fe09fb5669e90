"""The ``pmrl-bench`` command line: run, tune, show, list, plugins, leaderboard, compare (``python -m pmrl_bench``
is the same). One module per group of commands; :func:`main` is the console script's entry point.

Exit status: 0 success; 2 bad usage or bad input (one line on stderr); 1 a run or check failed.
"""

from pmrl_bench.cli.app import build_parser, main
from pmrl_bench.cli.output import PROG

__all__ = ["PROG", "build_parser", "main"]
