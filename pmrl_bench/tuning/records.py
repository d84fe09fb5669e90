"""Tuned-parameter files: what a finished study found, stored next to the results (versioned JSON).

One file per study: ``<results>/_tuning/<task>/<objective>/<study id>.json``. It holds the study's fixed context
(what every trial shared: task, encoders, budget, protocol, the objective's fixed parameters), how it searched
(space, sampler, seed, metric, trials) and every completed trial in order, so ``pmrl-bench run --tuned`` can
train with the best parameters and a leaderboard can show the tuning budget and the best-so-far curve from the
results directory alone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pmrl_bench.errors import UsageError
from pmrl_bench.fsutil import atomic_write
from pmrl_bench.results.store import TUNING_DIR

RECORD_VERSION = 1
MAX_RECORD_BYTES = 16 * 1024**2


class TrialRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: int
    value: float
    status: str  # "ok", or "diverged"/"failed" (scored the worst value)
    params: dict[str, Any]
    published_defaults: bool = False  # the enqueued trial that trains the published defaults (trial 0)


class TunedParams(BaseModel):
    """A finished (or partial) study, as the runner and the leaderboards read it."""

    model_config = ConfigDict(extra="forbid")

    record_version: Literal[1] = RECORD_VERSION
    study: str
    study_id: str
    task: str
    objective: str
    protocol: str
    context: dict[str, Any]  # the run context every trial shared (see runner.spec.RunSpec.params)
    context_id: str
    space: dict[str, Any]
    metric: str
    split: Literal["validation"] = "validation"
    sampler: str
    sampler_seed: int
    trial_seed: int
    trials_requested: int = Field(ge=1)
    trials: list[TrialRecord]
    best: TrialRecord | None = None
    updated: str = ""

    @property
    def complete(self) -> bool:
        return len(self.trials) >= self.trials_requested

    @property
    def still_improving(self) -> bool:
        """The best trial came in the study's last fifth: more trials might still have found better values."""
        return self.best is not None and bool(self.trials) and self.best.number >= len(self.trials) * 4 / 5

    @property
    def defaults_trial(self) -> TrialRecord | None:
        return next((t for t in self.trials if t.published_defaults), None)

    def label(self) -> str:
        """How leaderboards name a configuration trained with these parameters."""
        return f"tuned: {len(self.trials)} trials on validation, {self.sampler}, sampler seed {self.sampler_seed}"

    def provenance(self, path: Path, root: Path) -> dict[str, Any]:
        """What a result file trained with these parameters records in ``tuning``."""
        return {
            "trials": len(self.trials), "sampler": self.sampler, "seed": self.sampler_seed, "metric": self.metric,
            "split": self.split, "study": self.study, "file": path.relative_to(root).as_posix(),
            "best_trial": self.best.number if self.best else None,
            "best_value": self.best.value if self.best else None,
        }


def digest(value: Any, length: int = 12) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=repr).encode()).hexdigest()[:length]


def record_path(root: Path, task: str, objective: str, study_id: str) -> Path:
    return root / TUNING_DIR / task / objective / f"{study_id}.json"


def write_record(path: Path, record: TunedParams) -> None:
    atomic_write(path, (json.dumps(record.model_dump(mode="json"), indent=2, sort_keys=True) + "\n").encode())


def read_record(path: Path) -> TunedParams:
    """One tuned-parameter file; anything else is one line of bad input."""
    where = f"tuned-parameter file {str(path)!r}"
    if not path.is_file():
        raise UsageError(f"{where}: no such regular file")
    if path.stat().st_size > MAX_RECORD_BYTES:
        raise UsageError(f"{where}: larger than {MAX_RECORD_BYTES} bytes; not a tuned-parameter file")
    try:
        return TunedParams.model_validate_json(path.read_bytes())
    except (ValidationError, ValueError) as exc:
        first = str(exc).strip().splitlines()
        raise UsageError(f"{where}: not a valid tuned-parameter file "
                         f"({first[1].strip() if len(first) > 1 else first[0]})") from None


def scan_records(root: Path) -> tuple[list[tuple[Path, TunedParams]], list[tuple[Path, str]]]:
    """Every tuned-parameter file under ``<root>/_tuning``, and the files that could not be read (with why)."""
    base = root / TUNING_DIR
    found, problems = [], []
    if not base.is_dir():
        return found, problems
    for path in sorted(base.rglob("*.json")):
        if any(part.startswith(".") for part in path.relative_to(base).parts):
            continue
        try:
            found.append((path, read_record(path)))
        except UsageError as exc:
            problems.append((path, str(exc)))
    return found, problems
