"""Inter-process locks for the results tree and for files rebuilt from it.

``filelock.FileLock`` is an OS lock (``flock`` on POSIX): the kernel releases it when the holder exits or
is killed (``kill -9`` included), so a crash never leaves a stale lock behind that blocks the next sweep.
"""

from __future__ import annotations

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


def lock_in(directory: Path, key: str) -> FileLock:
    """A lock file for ``key`` inside ``directory``, which is created and ignores itself in git."""
    directory.mkdir(parents=True, exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text(_GITIGNORE, encoding="utf-8")
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
    return FileLock(directory / f"{digest}.lock", thread_local=False)


@contextmanager
def output_lock(out_dir: Path) -> Iterator[None]:
    """Held while writing into ``out_dir``: serialises writers of one output directory (two sweeps finishing
    at once rewrite the same leaderboards).

    The lock lives in the directory itself (``.locks/``), found through its resolved path, so every spelling
    of the directory (relative, through a symlink) and every ``TMPDIR`` meet on the same lock, and the lock
    belongs to whoever may write the directory. A lock that cannot be taken is a usage error naming it.
    """
    directory = Path(os.path.realpath(out_dir)) / OUTPUT_LOCKS_DIR
    try:
        lock = lock_in(directory, "pages")
        lock.acquire()
    except OSError as exc:
        raise UsageError(f"cannot lock {str(out_dir)!r} for writing: {exc.strerror or exc} ({directory}); "
                         "it must be a directory you can write (remove it and pmrl-bench recreates it)") from None
    try:
        yield
    finally:
        lock.release()
