"""What defines a run: the budget shared by every objective, and the run specification."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from pmrl_bench.errors import UsageError


@dataclass(frozen=True)
class Budget:
    """The training budget, identical for every objective of a sweep (AdamW, as in the official PMRL/GRAM code)."""

    steps: int = 300
    batch_size: int = 128
    lr: float = 1e-3
    dim: int = 64
    weight_decay: float = 0.01
    grad_clip: float = 2.0
    warmup: float = 0.1

    def validate(self) -> None:
        problems = []
        if self.steps < 1:
            problems.append(f"--steps must be >= 1, got {self.steps}")
        if self.batch_size < 2:
            problems.append(f"--batch-size must be >= 2 (contrastive objectives need negatives), got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):  # inf would train to NaN and look like divergence
            problems.append(f"--lr must be a finite number > 0, got {self.lr}")
        if self.dim < 1:
            problems.append(f"--dim must be >= 1, got {self.dim}")
        if self.weight_decay < 0 or self.grad_clip <= 0 or not 0 <= self.warmup < 1:
            problems.append("weight decay must be >= 0, grad clip > 0 and warm-up in [0, 1)")
        if problems:
            raise UsageError(problems[0])


@dataclass(frozen=True)
class EncoderChoice:
    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSpec:
    """One run. Everything but the seed forms the configuration that ``config_id`` hashes."""

    task: str
    task_params: dict[str, Any]
    objective: str
    objective_params: dict[str, Any]
    encoders: dict[str, EncoderChoice]
    budget: Budget
    seed: int

    def params(self) -> dict[str, Any]:
        return {
            "objective": dict(self.objective_params),
            "task": dict(self.task_params),
            "encoders": {m: {"name": e.name, "params": dict(e.params)} for m, e in self.encoders.items()},
            "budget": asdict(self.budget),
        }

    @property
    def config_id(self) -> str:
        canonical = json.dumps(
            {"task": self.task, "objective": self.objective, **self.params()}, sort_keys=True, default=repr
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def run_id(self) -> str:
        return f"{self.task}/{self.objective}/{self.config_id}-seed{self.seed}"
