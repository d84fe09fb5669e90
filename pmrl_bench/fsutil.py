"""Writing files so that a reader never sees half of one: temporary file in the same directory, fsync, rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically; a process killed at any point leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)  # mkstemp makes 0600; these files are meant to be shared
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C or SIGTERM mid-write included: leave no temporary behind
        Path(tmp).unlink(missing_ok=True)
        raise


def is_directory(path: Path) -> bool:
    """``path.is_dir()``, but a path the system refuses to look up (a name too long, a NUL byte in it) is not a
    directory instead of an exception, so that a bad path given on the command line is one line."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False
