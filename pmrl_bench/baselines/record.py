"""Baseline result files: a reference that does not train (linear CCA), stored beside the results at
``RESULTS/_baselines/<task>/<baseline>.json`` and validated like result files, so the leaderboard can show it.

A file records the task, its parameters and the fingerprint of the data it was computed on (the same
:func:`~pmrl_bench.runner.fingerprint.data_fingerprint` of the same split the runner uses), so the leaderboard shows
it only on a page whose results come from the same data. Reading never raises for a bad file: it reports one line.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pmrl_bench.registry import NAME_PATTERN
from pmrl_bench.results.schema import FILE_CONTENT, RETRIEVAL_KEYS, Score, Splits, check_file_content
from pmrl_bench.results.store import BASELINES_DIR, MAX_RESULT_BYTES

BASELINE_SCHEMA_VERSION = 1


class BaselineResult(BaseModel):
    """One baseline on one task: per-direction retrieval on the test split and how it was chosen."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = BASELINE_SCHEMA_VERSION
    baseline: str  # the file's stem, e.g. "cca"
    label: str = Field(max_length=120)  # the row label on the pages, e.g. "linear CCA (no training)"
    task: str
    task_params: dict[str, Any]
    data_fingerprint: str
    splits: Splits
    versions: dict[str, Any]
    retrieval: dict[str, dict[str, Score]]  # "<query>-><gallery>" -> {R@1, R@5, R@10, MdR}
    settings: dict[str, Any] = Field(default_factory=dict)  # what the baseline chose, e.g. {"components": {...}}
    created: str = ""
    command: str = ""

    @field_validator("baseline", "task")
    @classmethod
    def _path_safe(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a path-safe name (letters, digits and . _ + -)")
        return value

    @field_validator("retrieval")
    @classmethod
    def _directions(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        if not value:
            raise ValueError("no retrieval directions")
        for direction, scores in value.items():
            if "->" not in direction:
                raise ValueError(f"retrieval direction {direction!r} is not '<query>-><gallery>'")
            missing = [k for k in RETRIEVAL_KEYS if k not in scores]
            if missing:
                raise ValueError(f"retrieval direction {direction!r} lacks {', '.join(missing)}")
        return value


def baseline_path(results_dir: Path, task: str, baseline: str) -> Path:
    return Path(results_dir) / BASELINES_DIR / task / f"{baseline}.json"


def write_baseline(results_dir: Path, result: BaselineResult) -> Path:
    """Write atomically (a temporary beside the target, renamed over it); what is written reads back."""
    path = baseline_path(results_dir, result.task, result.baseline)
    content = json.dumps(result.model_dump(mode="json"), indent=2, sort_keys=True, allow_nan=False) + "\n"
    BaselineResult.model_validate_json(content, context=FILE_CONTENT)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_baseline(path: Path) -> BaselineResult:
    """The baseline in ``path``; :class:`ValueError` with a one-line reason when it is not a valid baseline file."""
    try:
        if not path.is_file():
            raise ValueError("not a regular file")
        if path.stat().st_size > MAX_RESULT_BYTES:
            raise ValueError(f"larger than {MAX_RESULT_BYTES} bytes")
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {str(exc).splitlines()[0]}") from None
    try:
        check_file_content(raw)
        if not isinstance(raw, dict):
            raise ValueError(f"a JSON {type(raw).__name__}, expected an object")
        if raw.get("schema_version") != BASELINE_SCHEMA_VERSION:
            raise ValueError(f"schema_version {raw.get('schema_version')!r}, this pmrl-bench reads "
                             f"{BASELINE_SCHEMA_VERSION}")
        result = BaselineResult.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the file"
        raise ValueError(f"invalid baseline: {where}: {first['msg']}") from None
    if path.parent.name != result.task or path.stem != result.baseline:
        raise ValueError(f"holds baseline {result.baseline!r} of task {result.task!r}, expected "
                         f"{BASELINES_DIR}/{result.task}/{result.baseline}.json")
    return result


def scan_baselines(results_dir: Path) -> tuple[list[tuple[str, BaselineResult]], list[tuple[str, str]]]:
    """``([(path relative to results_dir, baseline)], [(path, one-line problem)])`` for every
    ``_baselines/<task>/*.json``, sorted by path; hidden files (temporaries) are left alone."""
    root = Path(results_dir) / BASELINES_DIR
    found: list[tuple[str, BaselineResult]] = []
    problems: list[tuple[str, str]] = []
    if not root.is_dir():
        return found, problems
    for path in sorted(root.glob("*/*.json")):
        if path.name.startswith(".") or path.parent.name.startswith("."):
            continue
        shown = path.relative_to(results_dir).as_posix()
        try:
            found.append((shown, read_baseline(path)))
        except ValueError as exc:
            problems.append((shown, str(exc)))
    return found, problems
