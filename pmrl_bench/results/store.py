"""Reading and writing result files: deterministic paths, atomic writes, validation on read."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from pmrl_bench.errors import UsageError
from pmrl_bench.registry import NAME_PATTERN
from pmrl_bench.results.schema import RunResult, json_safe


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

    def path_for(self, task: str, objective: str, config_id: str, seed: int) -> Path:
        for what, name in (("task", task), ("objective", objective)):
            if not NAME_PATTERN.match(name):  # names become paths: never let one escape the root
                raise UsageError(f"{what} name {name!r} cannot be used as a results path")
        return self.root / task / objective / f"{config_id}-seed{seed}.json"

    def ensure_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".write-test-"):
                pass
        except OSError as exc:
            raise UsageError(f"results directory {str(self.root)!r} is not writable: {exc.strerror or exc}") from None

    @staticmethod
    def read(path: Path) -> RunResult:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidResult(path, f"unreadable: {exc}") from None
        if not isinstance(raw, dict):
            raise InvalidResult(path, "not a JSON object")
        try:
            return RunResult.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise InvalidResult(path, f"invalid result: {where}: {first['msg']}") from None

    def existing(self, task: str, objective: str, config_id: str, seed: int) -> RunResult | None:
        """The stored result of this run if it exists and is valid, else None."""
        path = self.path_for(task, objective, config_id, seed)
        if not path.exists():
            return None
        try:
            return self.read(path)
        except InvalidResult:
            return None

    def write(self, result: RunResult) -> Path:
        """Write atomically: a temporary file in the same directory, fsync, then rename over the target."""
        path = self.path_for(result.task, result.objective, result.config_id, result.seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(json_safe(result.model_dump(mode="json")), indent=2, sort_keys=True, allow_nan=False) + "\n"
        RunResult.model_validate_json(text)  # never store what we could not read back
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def scan(self) -> tuple[list[RunResult], list[ScanProblem]]:
        """Every valid result under the root, and every file that could not be used."""
        results, problems = [], []
        for path in self._result_paths():
            try:
                results.append(self.read(path))
            except InvalidResult as exc:
                problems.append(ScanProblem(path, exc.reason))
        return results, problems

    def _result_paths(self) -> Iterator[Path]:
        if not self.root.is_dir():
            return
        yield from sorted(p for p in self.root.rglob("*.json") if not p.name.startswith("."))
