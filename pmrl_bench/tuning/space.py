"""Search spaces: the hyper-parameter distributions an objective declares for ``pmrl-bench tune``.

An objective declares the space of its own parameters when it registers::

    from pmrl_bench.tuning.space import Choice, LogUniform

    register("my-loss", MyLoss, search_space={"temperature": LogUniform(0.01, 0.5), "hard": Choice([False, True])})

The budget's learning rate and weight decay (:data:`BUDGET_SPACE`) are searched for every objective alike; an
objective that declares nothing is tuned on those alone. This module imports neither torch nor Optuna, so
registering a space costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Distribution(Protocol):
    def check(self, name: str) -> None:
        """Raise ``ValueError`` when the distribution cannot be sampled."""

    def suggest(self, trial: Any, name: str) -> Any:
        """Draw a value through an Optuna trial."""

    def corners(self) -> list[Any]:
        """The extreme values a draw can take: the objective must accept each of them (checked before a study)."""

    def describe(self) -> dict[str, Any]:
        """A JSON description, recorded with every study."""


def _finite(*values: float) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


@dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly from [low, high]."""

    low: float
    high: float

    def check(self, name: str) -> None:
        if not _finite(self.low, self.high) or not self.low < self.high:
            raise ValueError(f"{name}: Uniform needs finite low < high, got {self.low}, {self.high}")

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high)

    def corners(self) -> list[Any]:
        return [self.low, self.high]

    def describe(self) -> dict[str, Any]:
        return {"type": "uniform", "low": self.low, "high": self.high}


@dataclass(frozen=True)
class LogUniform:
    """A float whose logarithm is uniform on [log low, log high] (temperatures, learning rates)."""

    low: float
    high: float

    def check(self, name: str) -> None:
        if not _finite(self.low, self.high) or not 0 < self.low < self.high:
            raise ValueError(f"{name}: LogUniform needs finite 0 < low < high, got {self.low}, {self.high}")

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=True)

    def corners(self) -> list[Any]:
        return [self.low, self.high]

    def describe(self) -> dict[str, Any]:
        return {"type": "log-uniform", "low": self.low, "high": self.high}


@dataclass(frozen=True)
class IntUniform:
    """An integer drawn uniformly from [low, high] (on a log scale with ``log=True``)."""

    low: int
    high: int
    log: bool = False

    def check(self, name: str) -> None:
        if (not all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high))
                or self.low >= self.high):
            raise ValueError(f"{name}: IntUniform needs integers low < high, got {self.low}, {self.high}")
        if self.log and self.low < 1:
            raise ValueError(f"{name}: IntUniform(log=True) needs low >= 1, got {self.low}")

    def suggest(self, trial: Any, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log)

    def corners(self) -> list[Any]:
        return [self.low, self.high]

    def describe(self) -> dict[str, Any]:
        return {"type": "int", "low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class Choice:
    """One of a few values (booleans, strings, numbers)."""

    options: Sequence[Any]

    def check(self, name: str) -> None:
        options = list(self.options)
        if not options:
            raise ValueError(f"{name}: Choice needs at least one option")
        if not all(o is None or isinstance(o, (bool, int, float, str)) for o in options):
            raise ValueError(f"{name}: Choice options must be None, booleans, numbers or strings, got {options!r}")
        if len({repr(o) for o in options}) != len(options):
            raise ValueError(f"{name}: Choice has a repeated option: {options!r}")

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.options))

    def corners(self) -> list[Any]:
        return list(self.options)

    def describe(self) -> dict[str, Any]:
        return {"type": "choice", "options": list(self.options)}


# Searched for every objective alike: DomainBed-style ranges wide enough for training from scratch (1e-3) and for
# continual training of an aligned model (1e-5 to 1e-4).
BUDGET_SPACE: dict[str, Distribution] = {
    "lr": LogUniform(1e-5, 1e-2),
    "weight_decay": LogUniform(1e-6, 1e-1),
}


# Completed trials per study unless `tune --trials` says otherwise: trial 0 trains the published defaults, and 29
# random draws cover the budget's two log-uniform axes densely enough that the best trial rarely comes last.
DEFAULT_TRIALS = 30
# The training seed of every trial: far from the seeds 0, 1, 2, ... that `run --seeds N` tests on, so a tuned
# configuration is never tested on the seed its parameters were chosen with (`run --tuned` refuses that seed).
DEFAULT_TRIAL_SEED = 1000


def check_space(space: Any, parameters: Mapping[str, Any], owner: str) -> dict[str, Distribution]:
    """The space as a dict, checked: every key is a parameter of the objective and every distribution samples.

    Raises ``ValueError`` naming the first problem (the caller turns it into a one-line usage error).
    """
    if space is None:
        return {}
    if not isinstance(space, Mapping):
        raise ValueError(f"the search space of {owner} must be a mapping of parameter name to distribution, "
                         f"got {type(space).__name__}")
    checked: dict[str, Distribution] = {}
    for name, distribution in space.items():
        if name in BUDGET_SPACE:
            raise ValueError(f"the search space of {owner} names {name!r}, which the budget space searches for "
                             "every objective; leave it out")
        if parameters and name not in parameters:
            raise ValueError(f"the search space of {owner} names {name!r}, which is not one of its parameters "
                             f"({', '.join(sorted(parameters)) or 'none'})")
        if not all(callable(getattr(distribution, m, None)) for m in ("check", "suggest", "corners", "describe")):
            raise ValueError(f"the search space of {owner}: {name!r} is {distribution!r}, not a distribution of "
                             "pmrl_bench.tuning.space (Uniform, LogUniform, IntUniform, Choice)")
        distribution.check(f"{owner}.{name}")
        checked[name] = distribution
    return checked


def describe_space(space: Mapping[str, Distribution]) -> dict[str, Any]:
    return {name: distribution.describe() for name, distribution in sorted(space.items())}
