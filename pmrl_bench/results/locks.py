"""Inter-process locks for the results tree and for files rebuilt from it.

``filelock.FileLock`` is an OS lock (``flock`` on POSIX): the kernel releases it when the holder exits or
is killed (``kill -9`` included), so a crash never leaves a stale lock behind that blocks the next sweep.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from pmrl_bench.errors import UsageError

_GITIGNORE = "# inter-process locks of pmrl-bench; never commit them\n*\n"
# The lock directory inside an output directory (e.g. the leaderboards): hidden, and ignoring itself in git.
OUTPUT_LOCKS_DIR = ".locks"
OUTPUT_LOCK_KEY = "pages"


def lock_in_path(directory: Path, key: str) -> Path:
    """The lock file of ``key`` inside ``directory``."""
    return directory / f"{hashlib.sha256(key.encode('utf-8')).hexdigest()[:24]}.lock"


def lock_in(directory: Path, key: str) -> FileLock:
    """A lock file for ``key`` inside ``directory``, which is created and ignores itself in git."""
    directory.mkdir(parents=True, exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text(_GITIGNORE, encoding="utf-8")
    return FileLock(lock_in_path(directory, key), thread_local=False)


def _output_lock_dir(out_dir: Path) -> Path:
    return Path(os.path.realpath(out_dir)) / OUTPUT_LOCKS_DIR


def output_lock_path(out_dir: Path) -> Path:
    """The lock file of :func:`output_lock`: one per directory, whatever path spells it."""
    return lock_in_path(_output_lock_dir(out_dir), OUTPUT_LOCK_KEY)


def output_lock_problem(out_dir: Path) -> str | None:
    """Why :func:`output_lock` would fail on an existing ``out_dir`` (its lock directory or file is not ours to
    use), or None; checks without creating anything."""
    directory, lock_file = _output_lock_dir(out_dir), output_lock_path(out_dir)
    if not os.path.lexists(directory):
        return None
    if not directory.is_dir():
        return f"{directory} is not a directory"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"{directory}: {os.strerror(errno.EACCES)}"
    if os.path.lexists(lock_file):
        if not lock_file.is_file():
            return f"{lock_file} is not a regular file"
        if not os.access(lock_file, os.R_OK | os.W_OK):
            return f"{lock_file}: {os.strerror(errno.EACCES)}"
    return None


def create_output_lock(out_dir: Path) -> str | None:
    """Create ``out_dir``, its lock directory and its lock file, as :func:`output_lock` will, without taking the
    lock (another writer may hold it); why that failed, or None. Permission bits can lie (a path under ``/proc``
    looks writable to ``os.access``): only creating the files proves they can be created."""
    directory = _output_lock_dir(out_dir)
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        lock = lock_in(directory, OUTPUT_LOCK_KEY)
        os.close(os.open(lock.lock_file, os.O_RDWR | os.O_CREAT, 0o644))
    except OSError as exc:
        where = exc.filename if exc.filename is not None else directory
        return f"cannot create {where}: {exc.strerror or exc}"
    return None


@contextmanager
def output_lock(out_dir: Path) -> Iterator[None]:
    """Held while writing into ``out_dir``: serialises writers of one output directory (two sweeps finishing
    at once rewrite the same leaderboards).

    The lock lives in the directory itself (``.locks/``), found through its resolved path, so every spelling
    of the directory (relative, through a symlink) and every ``TMPDIR`` meet on the same lock, and the lock
    belongs to whoever may write the directory. A lock that cannot be taken is a usage error naming it.
    """
    directory = _output_lock_dir(out_dir)
    try:
        lock = lock_in(directory, OUTPUT_LOCK_KEY)
        lock.acquire()
    except OSError as exc:
        raise UsageError(f"cannot lock {str(out_dir)!r} for writing: {exc.strerror or exc} ({directory}); "
                         "it must be a directory you can write (remove it and pmrl-bench recreates it)") from None
    try:
        yield
    finally:
        lock.release()
