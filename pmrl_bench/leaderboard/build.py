"""Turn result files into the leaderboards: one markdown page per task, an overview, and PNG plots; write them
atomically and check them.

Everything is sorted and formatted deterministically and the bootstrap uses a fixed generator: the same
results give byte-identical markdown. Every string taken from a result file goes into a page through
:mod:`pmrl_bench.leaderboard.md` (escaped), and page names never collide with the overview or each other.

Building is incremental when given a :class:`~pmrl_bench.leaderboard.cache.PageCache`: a task's page and plots, and
the overview, are taken from it when their inputs are unchanged; writing leaves a file that already holds its page
untouched (modification time included).
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from pmrl_bench.baselines.record import BaselineResult
from pmrl_bench.errors import PmrlBenchError, UsageError
from pmrl_bench.leaderboard.baselines import match_baselines
from pmrl_bench.leaderboard.cache import PageCache
from pmrl_bench.leaderboard.data import Run, runs_of
from pmrl_bench.leaderboard.fingerprints import page_keys
from pmrl_bench.leaderboard.modality_scaling import PAGE as SCALING_PAGE
from pmrl_bench.leaderboard.modality_scaling import scaling_files
from pmrl_bench.leaderboard.pages import OVERVIEW, Skipped, group_stem, overview, page_stems, task_page
from pmrl_bench.leaderboard.plots import render_plots
from pmrl_bench.leaderboard.sections import Ranked, protocol_tables
from pmrl_bench.leaderboard.stability_rows import with_headline
from pmrl_bench.leaderboard.tuning import Record, for_protocol, tuning_plot, tuning_section
from pmrl_bench.leaderboard.verdicts import REFERENCES, verdict_files
from pmrl_bench.results import RunResult
from pmrl_bench.results.locks import create_output_lock, output_lock_problem

Page = str | bytes

__all__ = ["OVERVIEW", "PagesWritten", "Skipped", "build_leaderboards", "check_leaderboards", "ensure_writable",
           "page_stems", "write_leaderboards"]


class PagesWritten(NamedTuple):
    """Every page of a rebuild, and those of them whose content changed (the only files rewritten)."""

    pages: list[Path]
    rewritten: list[Path]


def build_leaderboards(results: Sequence[RunResult], problems: Iterable[Skipped | str] = (),
                       plots: bool = True, tuning: Sequence[Record] = (),
                       cache: PageCache | None = None, references: Sequence[str] = REFERENCES,
                       baselines: Sequence[tuple[str, BaselineResult]] = (),
                       modality_sweep: Sequence[RunResult] = ()) -> dict[str, Page]:
    """``{file name: content}``: a markdown page per task, ``README.md`` (the overview), the planned comparisons
    against ``references`` (``verdicts.md`` and ``verdicts.json``, :mod:`pmrl_bench.leaderboard.verdicts`) and, with
    ``plots`` and matplotlib installed, PNG plots (bytes) beside them. ``problems``: the result files left out;
    ``tuning``: the tuned-parameter files of the results directory (``tuning.records.scan_records``).

    ``cache``: take each task's page and plots, and the overview, from it when their inputs are unchanged
    (:mod:`pmrl_bench.leaderboard.fingerprints`), and store the ones built; the pages are the same either way.
    ``baselines``: ``(path, baseline)`` of the results directory's baseline files; one computed on other data than
    its task's results is left out and listed with the skipped files."""
    shown, mismatched = match_baselines(results, baselines)
    problems = list(problems) + [Skipped(path, why) for path, why in mismatched]
    stems = page_stems({r.task for r in results})
    found: dict[str, dict[str, Page] | None] = dict.fromkeys(stems)
    front: str | None = None  # the overview
    if cache is not None:
        keys, overview_key = page_keys(results, stems, tuning, problems, plots, shown)
        found = {task: _own(cache.get(key), stems[task]) for task, key in keys.items()}
        cached = cache.get(overview_key) or {}
        front = cached[OVERVIEW] if list(cached) == [OVERVIEW] and isinstance(cached[OVERVIEW], str) else None
    missing = [task for task in stems if found[task] is None]
    if missing or front is None:  # the overview needs every task's ranks
        tasks = runs_of(results)
        for runs in tasks.values():
            with_headline(runs)
        tables = {task: protocol_tables(tasks[task]) for task in (tasks if front is None else missing)}
        for task in missing:
            found[task] = _task_files(task, stems[task], tasks[task], tables[task], tuning, plots, shown.get(task, []))
            if cache is not None:
                cache.put(keys[task], found[task] or {})
        if front is None:
            front = overview(tasks, tables, stems, problems)
            if cache is not None:
                cache.put(overview_key, {OVERVIEW: front})
    pages = {name: content for files in found.values() for name, content in (files or {}).items()}
    pages[OVERVIEW] = front
    pages.update(verdict_files(results, references))  # seed-level t-tests on stored scores: cheap, never cached
    scaling = scaling_files(results, modality_sweep, references, plots) if modality_sweep else {}
    if scaling:
        pages.update(scaling)
        pages[OVERVIEW] = front.rstrip("\n") + ("\n\nHow the objectives fare as the number of modalities grows: "
                                                f"[{SCALING_PAGE}]({SCALING_PAGE}).\n")
    return pages


def _own(files: dict[str, Page] | None, stem: str) -> dict[str, Page] | None:
    """A cached task entry if it holds the task's page and nothing but its files (``<stem>.*``), else None."""
    if files is None or not isinstance(files.get(f"{stem}.md"), str):
        return None
    return files if all(name.startswith(f"{stem}.") for name in files) else None


def _task_files(task: str, stem: str, runs: Sequence[Run], tables: Sequence[Ranked], tuning: Sequence[Record],
                plots: bool, baselines: Sequence[BaselineResult] = ()) -> dict[str, Page]:
    """One task's page and, with ``plots``, the PNG plots beside it."""
    files: dict[str, Page] = {}
    sections = {}
    for table in tables:
        records = for_protocol(tuning, task, table.group.name)
        group = group_stem(stem, table.group.name)
        sections[table.group.name] = tuning_section(records, group)
        if plots:
            files.update(render_plots(task, table.group.runs, group))
            files.update(tuning_plot(task, records, group))
    files[f"{stem}.md"] = task_page(task, stem, runs, tables, sections, baselines)
    return files


class LeaderboardWriteError(PmrlBenchError):
    """A page could not be written (disk full, directory removed): exit status 1; the results are untouched."""


def ensure_writable(out_dir: Path, option: str = "--leaderboard") -> None:
    """Check, before anything trains, that pages can be written into ``out_dir``: it is a directory we may write (or
    can be created in one), its name fits the file system, and its lock directory and lock file can actually be
    created (they are: the permission bits of some file systems, ``/proc`` say, do not tell)."""
    problem = _unwritable(Path(os.path.abspath(out_dir))) or create_output_lock(out_dir)
    if problem:
        raise UsageError(f"leaderboard directory {str(out_dir)!r} is not writable: {problem}; "
                         f"pass {option} DIR with a directory you can write")


def _unwritable(path: Path) -> str | None:
    missing, existing = [], path
    while not os.path.lexists(existing):  # the nearest part of the path that exists
        missing.append(existing.name)
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return os.strerror(errno.EACCES)
    try:
        name_max, path_max = os.pathconf(existing, "PC_NAME_MAX"), os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    if any(len(os.fsencode(name)) > name_max for name in missing) or len(os.fsencode(str(path))) >= path_max:
        return os.strerror(errno.ENAMETOOLONG)
    return None if missing else output_lock_problem(path)


def write_leaderboards(out_dir: Path, pages: dict[str, Page]) -> PagesWritten:
    """Write every page atomically: a uniquely named temporary beside it, fsync, rename over the page.

    A reader never sees half a page, two writers never share a temporary, and a failure (or a signal) leaves
    no temporary behind: every page is either the old one or the new one. A temporary that a writer killed with
    ``kill -9`` left is removed first (call this under :func:`~pmrl_bench.results.locks.output_lock`: no other
    writer is then at work). A file that already holds exactly its page is left as it is, modification time
    included, so a rebuild touches only the pages that changed. Returns every page's path and those rewritten.
    """
    remove_temporaries(out_dir)
    every, rewritten = [], []
    for name, content in sorted(pages.items()):
        path = out_dir / name
        every.append(path)
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        if _holds(path, data):
            continue
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=".tmp")
        except OSError as exc:
            raise _write_error(out_dir, name, exc) from None
        try:
            os.fchmod(fd, 0o644)  # mkstemp makes 0600; pages are meant to be read by others
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise _write_error(out_dir, name, exc) from None
            raise
        rewritten.append(path)
    return PagesWritten(every, rewritten)


def _holds(path: Path, data: bytes) -> bool:
    """Whether ``path`` is a regular file (not a link) whose bytes are ``data``."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size != len(data):
            return False
        return path.read_bytes() == data
    except OSError:  # unreadable: rewrite it, and let the write report what is wrong
        return False


# What write_leaderboards' mkstemp names a temporary: ".<page>." + 8 random characters + ".tmp".
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def remove_temporaries(out_dir: Path) -> list[Path]:
    """Delete the page temporaries a killed writer left in ``out_dir`` (regular files only); the ones removed."""
    removed = []
    try:
        entries = list(os.scandir(out_dir))
    except OSError:  # no directory yet: nothing was left
        return removed
    for entry in entries:
        if _TEMPORARY.match(entry.name) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except OSError:  # gone already, or not ours to remove: it does no harm where it is
                continue
            removed.append(Path(entry.path))
    return removed


def _write_error(out_dir: Path, name: str, exc: OSError) -> LeaderboardWriteError:
    reason = exc.strerror or errno.errorcode.get(exc.errno or 0) or str(exc)
    return LeaderboardWriteError(f"cannot write leaderboard page {name} in {out_dir}/: {reason}; the result files "
                                 "are intact, and each page is either the previous one or the new one")


def check_leaderboards(out_dir: Path, pages: dict[str, Page]) -> list[str]:
    """Names of pages that are missing or differ from what the results give.

    Markdown is compared byte for byte. A PNG only has to exist: its bytes depend on the matplotlib and
    FreeType versions installed, not only on the results (whose every number the markdown already pins).
    """
    stale = []
    for name, content in sorted(pages.items()):
        path = out_dir / name
        if not path.exists():
            stale.append(name)
        elif isinstance(content, str) and path.read_text(encoding="utf-8") != content:
            stale.append(name)
    return stale
