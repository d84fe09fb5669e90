"""The result-file schema (contract v1), validated with pydantic on write and on read."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pmrl_bench.registry import NAME_PATTERN

SCHEMA_VERSION = 1
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


class RunResult(BaseModel):
    """One run of one objective on one task with one seed."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    run_id: str
    config_id: str
    task: str
    objective: str
    # {"objective": {...}, "task": {...}, "encoders": {modality: {"name", "params"}}, "budget": {...}}
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
