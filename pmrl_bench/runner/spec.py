"""What defines a run: the budget shared by every objective, the protocol it starts from, and the run specification."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from pmrl_bench.errors import UsageError

SELECTION_RULES = ("last", "best")
# Upper bounds of the budget's counts, like the cap on a sweep's runs: a value past them is a typo or an attack,
# not an experiment (ten million steps of the smallest encoder take days; an embedding of a million dimensions
# is beyond any encoder here), and would otherwise train until killed.
MAX_STEPS = 10_000_000
MAX_DIM = 1_000_000
# The metric --select best and `pmrl-bench tune` maximise on the validation split by default.
DEFAULT_SELECTION_METRIC = "mean_R@1"


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

    def validate(self, what: str = "") -> None:
        prefix = f"{what}: " if what else ""
        problems = []
        if not 1 <= self.steps <= MAX_STEPS:
            problems.append(f"--steps must be between 1 and {MAX_STEPS}, got {self.steps}")
        if self.batch_size < 2:
            problems.append(f"--batch-size must be >= 2 (contrastive objectives need negatives), got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):  # inf would train to NaN and look like divergence
            problems.append(f"--lr must be a finite number > 0, got {self.lr}")
        if not 1 <= self.dim <= MAX_DIM:
            problems.append(f"--dim must be between 1 and {MAX_DIM}, got {self.dim}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0) or not self.grad_clip > 0 \
                or not 0 <= self.warmup < 1:
            problems.append("weight decay must be >= 0, grad clip > 0 and warm-up in [0, 1)")
        if problems:
            raise UsageError(prefix + problems[0])


@dataclass(frozen=True)
class EncoderChoice:
    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InitStage:
    """The warm-start stage of ``--init OBJECTIVE:STEPS``: the encoders are first trained with ``objective`` for
    ``budget.steps`` steps (its own learning rate in ``budget.lr``), then every objective continues from them."""

    objective: str
    objective_params: dict[str, Any]
    budget: Budget

    def params(self) -> dict[str, Any]:
        return {"objective": self.objective, "objective_params": dict(self.objective_params),
                "budget": asdict(self.budget)}


@dataclass(frozen=True)
class Protocol:
    """Where a run's encoders start: ``scratch`` (random weights), ``warm`` (an init stage trained by the harness)
    or ``checkpoint`` (the user's safetensors file, identified by the SHA-256 of its tensors)."""

    kind: str = "scratch"
    init: InitStage | None = None
    checkpoint_sha256: str | None = None
    checkpoint_path: str | None = field(default=None, compare=False)  # where it was read; not part of the config

    @property
    def name(self) -> str:
        """``scratch``, ``warm:<objective>:<steps>`` or ``checkpoint:<first 12 hex digits of the hash>``."""
        if self.kind == "warm" and self.init is not None:
            return f"warm:{self.init.objective}:{self.init.budget.steps}"
        if self.kind == "checkpoint" and self.checkpoint_sha256:
            return f"checkpoint:{self.checkpoint_sha256[:12]}"
        return "scratch"

    def params(self) -> dict[str, Any]:
        """What of the protocol enters a run's configuration (and its config id)."""
        out: dict[str, Any] = {"name": self.name}
        if self.init is not None:
            out["init"] = self.init.params()
        if self.checkpoint_sha256:
            out["checkpoint_sha256"] = self.checkpoint_sha256
        return out


SCRATCH = Protocol()


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
    protocol: Protocol = SCRATCH
    selection: str = "last"  # "last" or "best" (on the validation split, by DEFAULT_SELECTION_METRIC)
    probe: str = "torch"  # the classification probes' backend: "torch" (on the run's device) or "sklearn"
    # Where tuned parameters came from (``pmrl-bench run --tuned``): study, trials, sampler, seed, metric.
    tuning: dict[str, Any] | None = field(default=None, hash=False)

    def params(self) -> dict[str, Any]:
        tuning = {} if self.tuning is None else {"tuning": {k: v for k, v in self.tuning.items() if k != "file"}}
        return {
            "objective": dict(self.objective_params),
            "task": dict(self.task_params),
            "encoders": {m: {"name": e.name, "params": dict(e.params)} for m, e in self.encoders.items()},
            "budget": asdict(self.budget),
            "protocol": self.protocol.params(),
            "selection": {"rule": self.selection, "metric": DEFAULT_SELECTION_METRIC},
            "evaluation": {"probe": self.probe},
            **tuning,
        }

    @property
    def config_id(self) -> str:
        return config_id_of(self.task, self.objective, self.params())

    @property
    def run_id(self) -> str:
        return f"{self.task}/{self.objective}/{self.config_id}-seed{self.seed}"


def config_id_of(task: str, objective: str, params: dict[str, Any]) -> str:
    """The configuration hash of a run: its task, objective and every parameter, seed excluded."""
    canonical = json.dumps({"task": task, "objective": objective, **params}, sort_keys=True, default=repr)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def spec_from_params(task: str, objective: str, params: dict[str, Any], seed: int) -> RunSpec:
    """The run a result file describes (its ``params`` as written by :meth:`RunSpec.params`), e.g. to retrain it."""
    protocol_params = params.get("protocol") or {"name": "scratch"}
    init = protocol_params.get("init")
    if init is not None:
        protocol = Protocol("warm", init=InitStage(init["objective"], dict(init["objective_params"]),
                                                   Budget(**init["budget"])))
    elif protocol_params.get("checkpoint_sha256"):
        protocol = Protocol("checkpoint", checkpoint_sha256=protocol_params["checkpoint_sha256"])
    else:
        protocol = SCRATCH
    return RunSpec(
        task=task,
        task_params=dict(params["task"]),
        objective=objective,
        objective_params=dict(params["objective"]),
        encoders={m: EncoderChoice(e["name"], dict(e["params"])) for m, e in params["encoders"].items()},
        budget=Budget(**params["budget"]),
        seed=seed,
        protocol=protocol,
        selection=(params.get("selection") or {}).get("rule", "last"),
        probe=(params.get("evaluation") or {}).get("probe", "torch"),
        tuning=params.get("tuning"),
    )
