"""Turn result files into the leaderboards: one markdown page per task, an overview, and PNG plots; write them
atomically and check them.

Everything is sorted and formatted deterministically and the bootstrap uses a fixed generator: the same
results give byte-identical markdown. Every string taken from a result file goes into a page through
:mod:`pmrl_bench.leaderboard.md` (escaped), and page names never collide with the overview or each other.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from pmrl_bench.errors import PmrlBenchError, UsageError
from pmrl_bench.leaderboard.data import runs_of
from pmrl_bench.leaderboard.pages import OVERVIEW, Skipped, group_stem, overview, page_stems, task_page
from pmrl_bench.leaderboard.plots import render_plots
from pmrl_bench.leaderboard.protocols import by_protocol
from pmrl_bench.leaderboard.sections import rank_group
from pmrl_bench.leaderboard.stability_rows import with_headline
from pmrl_bench.leaderboard.tuning import Record, for_protocol, tuning_plot, tuning_section
from pmrl_bench.results import RunResult
from pmrl_bench.results.locks import output_lock_problem

Page = str | bytes

__all__ = ["OVERVIEW", "Skipped", "build_leaderboards", "check_leaderboards", "ensure_writable", "page_stems",
           "write_leaderboards"]


def build_leaderboards(results: Sequence[RunResult], problems: Iterable[Skipped | str] = (),
                       plots: bool = True, tuning: Sequence[Record] = ()) -> dict[str, Page]:
    """``{file name: content}``: a markdown page per task, ``README.md`` (the overview) and, with ``plots``
    and matplotlib installed, PNG plots (bytes) beside them. ``problems``: the result files left out;
    ``tuning``: the tuned-parameter files of the results directory (``tuning.records.scan_records``)."""
    tasks = runs_of(results)
    for runs in tasks.values():
        with_headline(runs)
    stems = page_stems(tasks)
    tables = {task: [rank_group(group) for group in by_protocol(runs)] for task, runs in tasks.items()}
    pages: dict[str, Page] = {}
    for task, runs in tasks.items():
        sections = {}
        for table in tables[task]:
            records = for_protocol(tuning, task, table.group.name)
            stem = group_stem(stems[task], table.group.name)
            sections[table.group.name] = tuning_section(records, stem)
            if plots:
                pages.update(render_plots(task, table.group.runs, stem))
                pages.update(tuning_plot(task, records, stem))
        pages[f"{stems[task]}.md"] = task_page(task, stems[task], runs, tables[task], sections)
    pages[OVERVIEW] = overview(tasks, tables, stems, problems)
    return pages


class LeaderboardWriteError(PmrlBenchError):
    """A page could not be written (disk full, directory removed): exit status 1; the results are untouched."""


def ensure_writable(out_dir: Path, option: str = "--leaderboard") -> None:
    """Check, before anything trains and without creating anything, that pages can be written into ``out_dir``:
    it is a directory we may write (or can be created in one), its name fits the file system, its lock is ours."""
    problem = _unwritable(Path(os.path.abspath(out_dir)))
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


def write_leaderboards(out_dir: Path, pages: dict[str, Page]) -> list[Path]:
    """Write every page atomically: a uniquely named temporary beside it, fsync, rename over the page.

    A reader never sees half a page, two writers never share a temporary, and a failure (or a signal) leaves
    no temporary behind: every page is either the old one or the new one.
    """
    written = []
    for name, content in sorted(pages.items()):
        path = out_dir / name
        data = content if isinstance(content, bytes) else content.encode("utf-8")
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
        written.append(path)
    return written


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
