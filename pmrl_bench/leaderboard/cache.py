"""A content-addressed cache of built leaderboard files: a rebuild reuses, byte for byte, every page and plot whose
inputs did not change, instead of running its paired bootstraps and matplotlib again.

Where: ``<leaderboard dir>/.cache/``, beside the pages it serves. That directory is writable by construction (``run``
and ``leaderboard`` check it before anything trains) and its writers already take turns on its lock. The results
directory is the wrong home: it is the data, committed, copied between machines and merged from shards, and one
results directory may feed several leaderboard directories. The cache ignores itself in git (its own ``.gitignore``
holds ``*``, as the lock directory ``.locks`` does) and is tagged for backup tools (``CACHEDIR.TAG``), so a
committed ``leaderboards/`` never receives its files by accident. Nothing needs it: deleting it only costs time,
and ``leaderboard --check`` neither reads nor writes it (a check recomputes every page, as on a clean clone).

An entry is one JSON file, ``<key>.json``: the key it was stored under and, per file, its content and the SHA-256
of its name and content. Keys come from :mod:`pmrl_bench.leaderboard.fingerprints` (a hash of exactly what the
files depend on). An entry is never trusted: it is used only when it parses, names its own key, names plain page
files, and every content matches its hash. Anything else (truncated, edited, copied under another key, another
format) is a miss: those files are rebuilt and the entry overwritten. After a rebuild, :meth:`PageCache.prune`
drops the entries that rebuild did not use, so the cache stays about the size of the pages themselves.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path


CACHE_DIR = ".cache"
FORMAT = "pmrl-bench leaderboard cache 1"
_GITIGNORE = "# built leaderboard files, reused by pmrl-bench when their inputs are unchanged; never commit them\n*\n"
# https://bford.info/cachedir/: backup tools skip a directory holding this file
_CACHEDIR_TAG = ("Signature: 8a477f597d28d172789f06886806bc55\n"
                 "# This directory holds pmrl-bench's cache of built leaderboard files.\n")
_KEY = re.compile(r"^[0-9a-f]{64}$")
# What a cached file may be called: a page or plot of the leaderboard directory itself, never a path elsewhere.
_NAME = re.compile(r"^[^./\\\x00][^/\\\x00]*$")

Page = str | bytes


class PageCache:
    """The cache of one leaderboard directory's files (``{file name: content}`` per key)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.used: set[str] = set()  # keys read or stored by this rebuild: what prune keeps

    @classmethod
    def beside(cls, out_dir: Path) -> PageCache:
        """The cache of the pages written into ``out_dir``."""
        return cls(Path(out_dir) / CACHE_DIR)

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"not a cache key: {key!r}")
        return self.directory / f"{key}.json"

    def get(self, key: str) -> dict[str, Page] | None:
        """The files stored under ``key``, each checked against its hash; None when absent or not to be trusted."""
        try:
            entry = json.loads(self._path(key).read_bytes())
        except (OSError, ValueError, RecursionError):  # missing, unreadable or not JSON
            return None
        files = _verified(entry, key)
        if files is not None:
            self.used.add(key)
        return files

    def put(self, key: str, files: Mapping[str, Page]) -> None:
        """Store ``files`` under ``key`` atomically. Best effort: a cache that cannot be written (disk full, a
        read-only directory) only costs time, so the rebuild goes on; writing the pages reports such a directory."""
        self.used.add(key)
        try:
            stored = {}
            for name, content in sorted(files.items()):
                text = isinstance(content, str)
                data = content.encode("utf-8") if text else content
                stored[name] = {"sha256": _hash(name, data), "kind": "text" if text else "bytes",
                                "content": content if text else base64.b64encode(data).decode("ascii")}
            entry = json.dumps({"format": FORMAT, "key": key, "files": stored}, sort_keys=True, ensure_ascii=False)
            self._prepare()
            _replace(self._path(key), entry.encode("utf-8"))
        except (OSError, ValueError):  # ValueError: text that is not valid Unicode, which no page write takes either
            return

    def prune(self) -> list[Path]:
        """Delete the entries this rebuild did not use, and temporaries a killed writer left (call it under the
        output lock, after the rebuild: a temporary still being written only costs its writer the entry); the
        files removed."""
        removed = []
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return removed
        for entry in entries:
            stem, _, suffix = entry.name.rpartition(".")
            unused = suffix == "json" and _KEY.match(stem) and stem not in self.used
            left = entry.name.startswith(".") and suffix == "tmp"  # a temporary of a writer that was killed
            if (unused or left) and entry.is_file(follow_symlinks=False):
                try:
                    os.unlink(entry.path)
                except OSError:  # gone already, or not ours: it is ignored unless it verifies
                    continue
                removed.append(Path(entry.path))
        return removed

    def _prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for name, text in ((".gitignore", _GITIGNORE), ("CACHEDIR.TAG", _CACHEDIR_TAG)):
            if not (self.directory / name).exists():
                _replace(self.directory / name, text.encode("utf-8"))


def _replace(path: Path, data: bytes) -> None:
    """Write a temporary beside ``path`` and rename it over ``path``: readers see the old file or the new one.
    No fsync, unlike the pages: an entry a power cut truncates fails its hash check and is rebuilt."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache is as readable as the pages
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C or SIGTERM mid-write included: leave no temporary behind
        Path(tmp).unlink(missing_ok=True)
        raise


def _verified(entry: object, key: str) -> dict[str, Page] | None:
    """The files of a parsed entry if it is what :meth:`PageCache.put` stored under ``key``, else None."""
    if not isinstance(entry, dict) or entry.get("format") != FORMAT or entry.get("key") != key:
        return None
    stored = entry.get("files")
    if not isinstance(stored, dict):
        return None
    files: dict[str, Page] = {}
    for name, item in stored.items():
        if not isinstance(name, str) or not _NAME.match(name) or not isinstance(item, dict):
            return None
        content, kind = item.get("content"), item.get("kind")
        if not isinstance(content, str) or kind not in ("text", "bytes"):
            return None
        try:  # a lone surrogate in a name or text cannot be encoded: UnicodeEncodeError is a ValueError
            data = content.encode("utf-8") if kind == "text" else base64.b64decode(content, validate=True)
            if _hash(name, data) != item.get("sha256"):
                return None
        except ValueError:
            return None
        files[name] = content if kind == "text" else data
    return files


def _hash(name: str, data: bytes) -> str:
    """What an entry records per file: the name is hashed too, so a damaged name is caught like damaged content."""
    return hashlib.sha256(name.encode("utf-8") + b"\0" + data).hexdigest()
