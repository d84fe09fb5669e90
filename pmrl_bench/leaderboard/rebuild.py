"""Rebuild (or check) the pages of a results directory from its result files, under the output lock, stopping
cleanly on Ctrl-C, SIGTERM or SIGHUP: what ``pmrl-bench leaderboard`` does, and ``run`` after its sweep.

A rebuild is incremental: pages and plots whose inputs did not change come from the cache beside the pages
(:mod:`pmrl_bench.leaderboard.cache`), and a file whose content did not change is not rewritten, so after a ``run``
on one task only that task's files and the overview change (and any page whose row labels that run renamed).
``run`` does not pass the tasks it touched: the inputs' hashes find them, and also find the pages a label shared
across tasks changed, which a list of touched tasks would leave stale.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from pmrl_bench.baselines.record import scan_baselines
from pmrl_bench.console import PROG, say
from pmrl_bench.errors import RunFailed
from pmrl_bench.leaderboard.build import (PagesWritten, Skipped, build_leaderboards, check_leaderboards,
                                          write_leaderboards)
from pmrl_bench.leaderboard.cache import PageCache
from pmrl_bench.leaderboard.verdicts import REFERENCES, check_references
from pmrl_bench.results import ResultStore
from pmrl_bench.results.locks import output_lock
from pmrl_bench.runner.interrupt import interruptible
from pmrl_bench.tuning.records import scan_records


def rebuild_leaderboards(results_dir: Path, out_dir: Path, check: bool = False, after: str = "",
                         references: Sequence[str] | None = None, modality_sweep: Path | None = None) -> PagesWritten:
    """Write the pages of ``results_dir`` into ``out_dir`` (every page, and those rewritten), or with ``check`` raise
    :class:`~pmrl_bench.errors.RunFailed` naming the stale ones. ``after``: what finished before, for the line an
    interrupted rebuild prints. Result and tuning files that cannot be read are skipped with a warning each.
    ``references``: the reference objectives of the verdicts (default :data:`~pmrl_bench.leaderboard.verdicts.
    REFERENCES`); given, each must name an objective of the results (else a usage error). ``modality_sweep``: a
    results directory of the same configurations at other modality counts, for ``modality-scaling.md``."""
    rebuild = f"{PROG} leaderboard {shlex.quote(str(results_dir))} --out {shlex.quote(str(out_dir))}"

    def stopped(signal_name: str) -> str:
        return (f"interrupted by {signal_name} while {'checking' if check else 'rebuilding'} the leaderboards in "
                f"{out_dir}/{f' ({after})' if after else ''}: the result files are intact and each page is the "
                f"previous one or the new one; rebuild them with '{rebuild}'")

    with interruptible(stopped):
        return _rebuild(results_dir, out_dir, check, rebuild, references, modality_sweep)


def _rebuild(results_dir: Path, out_dir: Path, check: bool, rebuild: str,
             references: Sequence[str] | None, modality_sweep: Path | None = None) -> PagesWritten:
    results, problems = ResultStore(results_dir).scan()
    sweep, sweep_problems = ResultStore(modality_sweep).scan() if modality_sweep is not None else ([], [])
    problems = [*problems, *sweep_problems]
    if references is not None:
        check_references(results, references)
    for problem in problems:
        say(f"warning: skipped {problem.path}: {problem.reason}")
    shown = [Skipped(_relative(p.path, results_dir, modality_sweep), p.reason.split(":")[0]) for p in problems]
    tuning, bad_tuning = scan_records(results_dir)
    for path, reason in bad_tuning:
        say(f"warning: skipped {path}: {reason}")
    baselines, bad_baselines = scan_baselines(results_dir)
    for path, reason in bad_baselines:
        say(f"warning: skipped {results_dir / path}: {reason}")
    shown += [Skipped(path, reason) for path, reason in bad_baselines]
    # A check recomputes every page, as on a clean clone; a rebuild reuses the pages whose inputs did not change.
    cache = None if check else PageCache.beside(out_dir)
    pages = build_leaderboards(results, shown, tuning=tuning, cache=cache,
                               references=REFERENCES if references is None else references, baselines=baselines,
                               modality_sweep=sweep)
    if check:
        stale = check_leaderboards(out_dir, pages)
        if stale:
            raise RunFailed(f"leaderboards in {out_dir}/ are stale: {', '.join(stale)}; rerun '{rebuild}'")
        return PagesWritten([], [])
    with output_lock(out_dir):  # two sweeps finishing at once must not interleave their page writes
        written = write_leaderboards(out_dir, pages)
        if cache is not None:
            cache.prune()
        return written


def _relative(path: Path, *roots: Path | None) -> str:
    """``path`` relative to the first results directory that holds it (a skipped file's name on the pages)."""
    for root in roots:
        if root is not None and path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return path.as_posix()
