"""Inter-process locks for the results tree and for files rebuilt from it.

``filelock.FileLock`` is an OS lock (``flock`` on POSIX): the kernel releases it when the holder exits or
is killed (``kill -9`` included), so a crash never leaves a stale lock behind that blocks the next sweep.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from filelock import FileLock

_GITIGNORE = "# inter-process locks of pmrl-bench; never commit them\n*\n"


def lock_in(directory: Path, key: str) -> FileLock:
    """A lock file for ``key`` inside ``directory``, which is created and ignores itself in git."""
    directory.mkdir(parents=True, exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text(_GITIGNORE, encoding="utf-8")
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
    return FileLock(directory / f"{digest}.lock", thread_local=False)


def output_lock(out_dir: Path) -> FileLock:
    """Serialises writers of one output directory (e.g. two sweeps rewriting the same leaderboards).

    The lock file lives in the system temporary directory, keyed by the directory's absolute path, so the
    output directory (often committed) gets no lock files in it.
    """
    key = os.path.abspath(out_dir)
    return lock_in(Path(tempfile.gettempdir()) / "pmrl-bench-locks", key)
