"""The result-file schema, validated with pydantic on write and on read.

Version 2 adds the protocol a run started from, the selection rule, the split sizes, a fingerprint of the task's
data, the metrics of the starting encoders, robustness views, the cost of training and, when the parameters were
tuned, where they came from. Version 1 files are still read: :func:`upgrade` fills the new keys with what a
version 1 run was (trained from scratch, last state kept).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pmrl_bench.registry import NAME_PATTERN

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
RETRIEVAL_KEYS = ("R@1", "R@5", "R@10", "MdR")
Status = Literal["ok", "diverged", "failed"]


class Metrics(BaseModel):
    """Evaluation metrics. ``retrieval`` is keyed ``"<query>-><gallery>"``; further views may be added."""

    model_config = ConfigDict(extra="allow")

    retrieval: dict[str, dict[str, float]] = Field(default_factory=dict)
    classification: dict[str, float] | None = None

    @field_validator("retrieval")
    @classmethod
    def _directions(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for direction, scores in value.items():
            if "->" not in direction:
                raise ValueError(f"retrieval direction {direction!r} is not '<query>-><gallery>'")
            missing = [k for k in RETRIEVAL_KEYS if k not in scores]
            if missing:
                raise ValueError(f"retrieval direction {direction!r} lacks {', '.join(missing)}")
        return value


class Selection(BaseModel):
    """Which encoder state was evaluated: the last one, or the best on the validation split (at which step)."""

    model_config = ConfigDict(extra="allow")

    rule: Literal["last", "best"] = "last"
    step: int | None = None
    metric: str | None = None
    value: float | None = None


class Splits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    train: int = Field(ge=0)
    val: int = Field(ge=0)
    test: int = Field(ge=0)


class RunResult(BaseModel):
    """One run of one objective on one task with one seed."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[2] = SCHEMA_VERSION
    run_id: str
    config_id: str
    task: str
    objective: str
    # {"objective": {...}, "task": {...}, "encoders": {modality: {"name", "params"}}, "budget": {...},
    #  "protocol": {...}, "selection": {...}, "evaluation": {...}}
    params: dict[str, Any]
    seed: int
    status: Status
    metrics: Metrics = Field(default_factory=Metrics)
    stability: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, Any]
    device: str = "cpu"
    error: str | None = None
    diverged_step: int | None = None
    duration_s: float = 0.0
    created: str = ""
    command: str = ""
    # -- version 2 --
    protocol: str = "scratch"  # "scratch", "warm:<objective>:<steps>" or "checkpoint:<hash>"
    init: dict[str, Any] | None = None  # the init checkpoint: {"sha256", "key", "file"} (warm and checkpoint)
    selection: Selection = Field(default_factory=Selection)
    splits: Splits | None = None
    data_fingerprint: str | None = None
    metrics_at_init: Metrics | None = None
    robustness: dict[str, Any] = Field(default_factory=dict)
    cost: dict[str, Any] = Field(default_factory=dict)
    tuning: dict[str, Any] | None = None

    @field_validator("task", "objective", "config_id")
    @classmethod
    def _path_safe(cls, value: str) -> str:
        # These become file and directory names (results tree, leaderboard pages): a crafted file must not escape.
        if not NAME_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a path-safe name (letters, digits and . _ + -)")
        return value

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"seed must be >= 0, got {value}")
        return value


def upgrade(raw: dict[str, Any]) -> dict[str, Any]:
    """A version 1 result as version 2: trained from scratch, the last state kept, nothing else known."""
    if raw.get("schema_version") != 1:
        return raw
    upgraded = dict(raw)
    upgraded["schema_version"] = 2
    steps = (raw.get("params") or {}).get("budget", {}).get("steps") if isinstance(raw.get("params"), dict) else None
    upgraded.setdefault("protocol", "scratch")
    upgraded.setdefault("selection", {"rule": "last", "step": steps if isinstance(steps, int) else None})
    return upgraded


def json_safe(value: Any) -> Any:
    """Plain-Python, JSON-safe copy: scalars unwrapped, non-finite floats as None (JSON has no NaN)."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / torch scalars
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
