"""Reading and writing result files: deterministic paths, atomic writes, validation on read, run claims.

Guarantees a sweep relies on (tests in ``tests/reliability/``):

* A result file is either absent or complete and valid: it is written to a temporary file in the same
  directory, fsynced, renamed over the target, and the directory is fsynced. A process killed at any point
  leaves at most a hidden ``.<name>.*.tmp`` file, which readers ignore and the next claim of that run removes.
* A result file is read only through the versioned schema; anything else is reported by path, never used.
  Only regular files inside the results directory (links resolved) of at most :data:`MAX_RESULT_BYTES` are
  read: a FIFO, a device, a link out of the tree or a huge file is reported like an invalid one.
* A run is trained by one process at a time: :meth:`ResultStore.claim` is an OS file lock (``filelock``,
  ``flock`` on POSIX) that the kernel releases when its holder dies, even by ``kill -9``.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock
from pydantic import ValidationError

from pmrl_bench.errors import UsageError
from pmrl_bench.registry import NAME_PATTERN
from pmrl_bench.results.locks import lock_in
from pmrl_bench.results.schema import (
    FILE_CONTENT, READABLE_VERSIONS, SCHEMA_VERSION, RunResult, json_params, json_safe, upgrade,
)

# Claim locks live here, apart from the results, in a directory that ignores itself in git.
CLAIMS_DIR = ".claims"
# Top-level directories of a results tree that hold no result files: init checkpoints (``_init``), tuning
# studies (``_tuning``) and baselines that do not train (``_baselines``, e.g. linear CCA). Names starting with "_"
# cannot be task names, so they never collide; scanning skips every such directory.
INIT_DIR = "_init"
TUNING_DIR = "_tuning"
BASELINES_DIR = "_baselines"
# The largest result file read or written: about 50 times a run with per-query ranks of 100 000 test instances
# in 12 directions. Anything larger is not a result pmrl-bench wrote, and reading it could exhaust memory.
MAX_RESULT_BYTES = 32 * 2**20


class InvalidResult(Exception):
    """A result file that cannot be read or does not match the schema."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class ScanProblem:
    path: Path
    reason: str


class ResultStore:
    """A results directory laid out as ``<root>/<task>/<objective>/<config_id>-seed<seed>.json``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    # -- paths ---------------------------------------------------------------------------------------
    def path_for(self, task: str, objective: str, config_id: str, seed: int) -> Path:
        for what, name in (("task", task), ("objective", objective), ("config id", config_id)):
            if not isinstance(name, str) or not NAME_PATTERN.match(name):  # names become paths: never escape root
                raise UsageError(f"{what} {name!r} cannot be used as a results path: use letters, digits and . _ + -")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise UsageError(f"seed {seed!r} cannot be used as a results path: expected an integer >= 0")
        path = self.root / task / objective / f"{config_id}-seed{seed}.json"
        # Belt and braces: the pattern forbids '/', '..'-only names and leading dots, so this cannot fail.
        if os.path.commonpath([os.path.abspath(path), os.path.abspath(self.root)]) != os.path.abspath(self.root):
            raise UsageError(f"result path {str(path)!r} would leave the results directory {str(self.root)!r}")
        return path

    def ensure_writable(self) -> None:
        """Check, before anything trains, that results and run claims (``.claims``) can be written here."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".write-test-"):
                pass
        except OSError as exc:
            raise UsageError(
                f"results directory {str(self.root)!r} is not writable: {exc.strerror or exc}; "
                "pass --results DIR with a directory you can write"
            ) from None
        claims = self.root / CLAIMS_DIR
        try:
            lock_in(claims, "write-test")
            with tempfile.NamedTemporaryFile(dir=claims, prefix=".write-test-"):
                pass
        except OSError as exc:
            raise UsageError(
                f"run claims directory {str(claims)!r} is not usable: {exc.strerror or exc}; it must be a directory "
                "you can write (remove it and pmrl-bench recreates it)"
            ) from None

    # -- reading -------------------------------------------------------------------------------------
    @staticmethod
    def read(path: Path) -> RunResult:
        text = _read_text(path)
        try:
            raw = json.loads(text, parse_constant=_reject_constant)
        except (json.JSONDecodeError, RecursionError, ValueError) as exc:
            raise InvalidResult(path, f"unreadable: {exc}") from None
        if not isinstance(raw, dict):
            raise InvalidResult(path, f"not a result: a JSON {type(raw).__name__}, expected an object")
        version = raw.get("schema_version")
        if isinstance(version, bool) or version not in READABLE_VERSIONS:
            if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
                reason = (f"schema_version {version} is newer than this pmrl-bench reads ({SCHEMA_VERSION}); "
                          "upgrade pmrl-bench")
            else:
                known = ", ".join(map(str, READABLE_VERSIONS))
                reason = f"schema_version {version!r} is not a known result schema (expected one of {known})"
            raise InvalidResult(path, f"invalid result: {reason}")
        try:
            return RunResult.model_validate(upgrade(raw), context=FILE_CONTENT)
        except ValidationError as exc:
            raise InvalidResult(path, f"invalid result: {_first_error(exc)}") from None

    def read_in_place(self, path: Path) -> RunResult:
        """Read a file of this store and check it sits where its own content says it belongs.

        A file copied or renamed to another run's path would otherwise count twice, or as another run.
        """
        root = os.path.realpath(self.root)
        if os.path.commonpath([os.path.realpath(path), root]) != root:
            raise InvalidResult(path, f"not read: a link to {os.path.realpath(path)}, outside the results directory")
        result = self.read(path)
        try:
            expected = self.path_for(result.task, result.objective, result.config_id, result.seed)
        except UsageError as exc:
            raise InvalidResult(path, f"invalid result: {exc}") from None
        if os.path.abspath(expected) != os.path.abspath(path):
            raise InvalidResult(
                path,
                f"misplaced result: its content is run {result.run_id!r}, stored at {expected.relative_to(self.root)}"
            )
        return result

    def existing(self, task: str, objective: str, config_id: str, seed: int) -> RunResult | None:
        """The stored result of this run if it exists and is valid, else None (an invalid file is rerun)."""
        path = self.path_for(task, objective, config_id, seed)
        if not path.exists():
            return None
        try:
            return self.read_in_place(path)
        except InvalidResult:
            return None

    def scan(self) -> tuple[list[RunResult], list[ScanProblem]]:
        """Every valid result under the root, and every file that could not be used (with the reason)."""
        results, problems = [], []
        for path in self.result_paths():
            try:
                results.append(self.read_in_place(path))
            except InvalidResult as exc:
                problems.append(ScanProblem(path, exc.reason))
        return results, problems

    def result_paths(self) -> Iterator[Path]:
        """The path of every result file under the root, sorted, without reading them."""
        if not self.root.is_dir():
            return
        for path in sorted(self.root.rglob("*.json")):
            # Hidden names are temporaries and claims; "_" directories hold checkpoints and studies, not results.
            parts = path.relative_to(self.root).parts
            if any(part.startswith(".") for part in parts) or parts[0].startswith("_"):
                continue
            yield path

    # -- writing -------------------------------------------------------------------------------------
    def write(self, result: RunResult) -> Path:
        """Write atomically: a temporary file in the same directory, fsync, rename over the target, fsync the
        directory."""
        path = self.path_for(result.task, result.objective, result.config_id, result.seed)
        content = json_safe(result.model_dump(mode="json", exclude={"params"}))
        content["params"] = json_params(result.params)  # a non-finite parameter is written as text, never null
        text = json.dumps(content, indent=2, sort_keys=True, allow_nan=False) + "\n"
        if len(text.encode("utf-8")) > MAX_RESULT_BYTES:
            raise ValueError(f"the result would be {len(text.encode('utf-8'))} bytes; result files are at most "
                             f"{MAX_RESULT_BYTES} bytes")
        try:  # never store what we could not read back
            RunResult.model_validate_json(text, context=FILE_CONTENT)
        except ValidationError as exc:
            raise ValueError(_first_error(exc)) from None
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            self._write_file(fd, text.encode("utf-8"))
            os.replace(tmp, path)
        except BaseException:  # Ctrl-C or SIGTERM mid-write included: leave no temporary behind
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_directory(path.parent)
        return path

    @staticmethod
    def _write_file(fd: int, data: bytes) -> None:
        """Write all of ``data`` to the open temporary file and fsync it (one seam, so tests can kill mid-write)."""
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; a result file is meant to be shared and read by others
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def remove_temporaries(self, task: str, objective: str, config_id: str, seed: int) -> int:
        """Delete temporaries that a killed writer left for this run. Call only while holding its claim."""
        path = self.path_for(task, objective, config_id, seed)
        removed = 0
        if path.parent.is_dir():
            for leftover in path.parent.glob(f".{path.name}.*.tmp"):
                leftover.unlink(missing_ok=True)
                removed += 1
        return removed

    # -- claims --------------------------------------------------------------------------------------
    def claim(self, task: str, objective: str, config_id: str, seed: int) -> FileLock:
        """The inter-process lock of one run. Acquire it before training the run; the OS frees it if we die."""
        path = self.path_for(task, objective, config_id, seed)  # validates the names
        return lock_in(self.root / CLAIMS_DIR, path.relative_to(self.root).as_posix())


def _read_text(path: Path) -> str:
    """The text of a regular file of at most MAX_RESULT_BYTES, else InvalidResult (never blocks, never floods
    memory)."""
    try:
        # O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer; no effect on regular files.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise InvalidResult(path, f"unreadable: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
        raise InvalidResult(path, f"unreadable: {what}, not a regular file")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(MAX_RESULT_BYTES + 1)
        except OSError as exc:
            raise InvalidResult(path, f"unreadable: {exc.strerror or exc}") from None
    if len(data) > MAX_RESULT_BYTES:
        raise InvalidResult(path, f"unreadable: larger than {MAX_RESULT_BYTES} bytes, the size limit of a result file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidResult(path, f"unreadable: {exc}") from None


def _first_error(exc: ValidationError) -> str:
    """The first problem of a validation error, as ``where: what``."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    if not where or message.startswith(where):
        return message
    return f"{where}: {message}"


def _reject_constant(name: str) -> float:
    # NaN and Infinity are not JSON; pmrl-bench never writes them (non-finite values are stored as null).
    raise ValueError(f"{name} is not valid JSON (non-finite numbers are stored as null)")


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (survives power loss, not only kill -9). Best effort where unsupported."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
