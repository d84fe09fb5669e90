"""The result-file schema, validated with pydantic on write and on read.

Version 2 adds the protocol a run started from, the selection rule, the split sizes, a fingerprint of the task's
data, the metrics of the starting encoders, robustness views, the cost of training and, when the parameters were
tuned, where they came from. Version 1 files are still read: :func:`upgrade` fills the new keys with what a
version 1 run was (trained from scratch, last state kept).

A file that passes is safe for everything that reads results (leaderboards, plots, statistics): every field they
read has the type and shape they need, every number is finite, and nothing is nested deeper than
:data:`MAX_DEPTH`. Non-finite numbers are written as null (metrics, stability), except in ``params``, where they
are written as the strings ``"inf"``, ``"-inf"`` and ``"nan"`` so that a result still says what ran.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_serializer, model_validator

from pmrl_bench.registry import NAME_PATTERN

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
RETRIEVAL_KEYS = ("R@1", "R@5", "R@10", "MdR")
# Where evaluation stores per-query ranks (``evaluation.per_query.PER_QUERY_KEY``; kept here so reading results
# needs no torch): ``metrics["per_query_ranks"][view][direction]`` = "1 3 2 ...", one 1-based rank per query.
PER_QUERY_KEY = "per_query_ranks"
# Stability entries the leaderboard plots, besides every block's ``curves``: (monitor, key) -> "list" (one list
# of numbers) or "lists" (a mapping of lists of numbers).
PLOTTED = {("singular", "sigma_mean"): "list", ("representation", "spectrum"): "lists"}
CURVES_KEY = "curves"
MAX_DEPTH = 32  # deeper nesting than any result pmrl-bench writes (about 6 levels); recursion stays bounded
MAX_RANK = 10**18  # per-query ranks must fit int64 (with room): the bootstrap holds them as such
# "not_applicable": the objective does not accept the task's number of modalities (``pmrl_bench.modality_counts``);
# such a run never trained, and its result says why in ``error`` so the pages can show it with dashes.
NOT_APPLICABLE = "not_applicable"
Status = Literal["ok", "diverged", "failed", "not_applicable"]
# Validation context for data read from a file (or about to be written to one): see check_file_content.
FILE_CONTENT = {"file_content": True}
# A metric: a JSON number, finite (no bool, no numeric string).
Score = Annotated[float, Field(strict=True, allow_inf_nan=False)]


def is_retrieval_view(value: Any) -> bool:
    """A metrics entry the leaderboard shows as a retrieval view: ``{"<query>-><gallery>": {"R@1": ..., ...}}``."""
    return isinstance(value, Mapping) and bool(value) and all(
        isinstance(d, str) and "->" in d and isinstance(s, Mapping) and "R@1" in s for d, s in value.items()
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_view(name: str, view: Mapping[str, Any]) -> None:
    for direction, scores in view.items():
        if not isinstance(direction, str) or "->" not in direction:
            raise ValueError(f"{name} direction {direction!r} is not '<query>-><gallery>'")
        if not isinstance(scores, Mapping):
            raise ValueError(f"{name} direction {direction!r} is not a mapping of scores")
        missing = [k for k in RETRIEVAL_KEYS if k not in scores]
        if missing:
            raise ValueError(f"{name} direction {direction!r} lacks {', '.join(missing)}")
        for key, score in scores.items():
            if not _is_number(score):
                raise ValueError(f"{name} direction {direction!r}: {key} is {score!r}, expected a number")


def _check_ranks(stored: Any) -> None:
    if not isinstance(stored, Mapping):
        raise ValueError(f"{PER_QUERY_KEY} is a {type(stored).__name__}, expected {{view: {{direction: ranks}}}}")
    for view, directions in stored.items():
        if not isinstance(directions, Mapping) or not directions:
            raise ValueError(f"{PER_QUERY_KEY}.{view} is not a non-empty mapping of directions to ranks")
        lengths = set()
        for direction, text in directions.items():
            where = f"{PER_QUERY_KEY}.{view}.{direction}"
            if not isinstance(text, str):
                raise ValueError(f"{where} is a {type(text).__name__}, expected a string of space-separated ranks")
            tokens = text.split(" ")
            if not all(t.isascii() and t.isdigit() and len(t) <= 18 and t[0] != "0" for t in tokens):
                raise ValueError(f"{where} is not space-separated integer ranks from 1 to {MAX_RANK - 1}")
            lengths.add(len(tokens))
        if len(lengths) > 1:
            raise ValueError(f"{PER_QUERY_KEY}.{view}: directions have unequal numbers of queries "
                             f"({', '.join(map(str, sorted(lengths)))}); every direction ranks the same queries")


class Metrics(BaseModel):
    """Evaluation metrics. ``retrieval`` is keyed ``"<query>-><gallery>"``; further views may be added.

    Any further entry shaped like a retrieval view (see :func:`is_retrieval_view`) is checked like
    ``retrieval``; ``per_query_ranks`` must hold integer ranks, the same number in every direction of a view.
    """

    model_config = ConfigDict(extra="allow")

    retrieval: dict[str, dict[str, Score]] = Field(default_factory=dict)
    classification: dict[str, Score] | None = None

    @field_validator("retrieval")
    @classmethod
    def _directions(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        _check_view("retrieval", value)
        return value

    @model_validator(mode="after")
    def _other_views(self) -> Metrics:
        for name, value in (self.model_extra or {}).items():
            if name == PER_QUERY_KEY:
                _check_ranks(value)
            elif is_retrieval_view(value):
                _check_view(name, value)
        return self


class Selection(BaseModel):
    """Which encoder state was evaluated: the last one, or the best on the validation split (at which step)."""

    model_config = ConfigDict(extra="allow")

    rule: Literal["last", "best"] = "last"
    step: int | None = None
    metric: str | None = None
    value: float | None = None


class CpuFacts(BaseModel):
    """The CPU a run computed on. CPU results move with its kernels (the ATen capability picks torch's vectorised
    code, and the model says what MKL and oneDNN dispatch to), so two results differing here may differ a little."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(max_length=256)  # /proc/cpuinfo's "model name", or what the platform reports
    capability: str = Field(max_length=32)  # torch.backends.cpu.get_cpu_capability(): DEFAULT, AVX2, AVX512, ...


class Splits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    train: int = Field(ge=0)
    val: int = Field(ge=0)
    test: int = Field(ge=0)
    # rows the task dropped before splitting (missing values); written only when the task dropped some
    dropped: int | None = Field(default=None, ge=0)

    @model_serializer(mode="wrap")
    def _without_unset_dropped(self, handler: Any) -> Any:
        data = handler(self)
        if isinstance(data, dict) and data.get("dropped") is None:
            data.pop("dropped", None)
        return data


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
    cpu: CpuFacts | None = None  # with ``device``: what the numbers were computed on (absent in older files)
    # The task's data card as the run saw it (``pmrl_bench.cards.DataCard.as_json``): a page opens with it, from the
    # result files alone (absent in older files).
    data_card: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _file_content(cls, raw: Any, info: ValidationInfo) -> Any:
        if info.context and info.context.get("file_content"):
            check_file_content(raw)
        return raw

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

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Row labels and page headers flatten these sections and print the budget as key=value pairs.
        for section in ("objective", "task", "budget", "protocol", "selection", "evaluation"):
            if section in value and not isinstance(value[section], dict):
                raise ValueError(f"params.{section} is a {_kind(value[section])}, expected an object")
        encoders = value.get("encoders", {})
        if not isinstance(encoders, dict):
            raise ValueError(f"params.encoders is a {_kind(encoders)}, expected {{modality: {{name, params}}}}")
        for modality, choice in encoders.items():
            if not (isinstance(choice, dict) and isinstance(choice.get("name"), str)
                    and isinstance(choice.get("params", {}), dict)):
                raise ValueError(f"params.encoders.{modality} is not {{\"name\": str, \"params\": object}}")
        return value

    @field_validator("versions")
    @classmethod
    def _versions(cls, value: dict[str, Any]) -> dict[str, Any]:
        plugins = value.get("plugins", {})
        if not isinstance(plugins, dict):
            raise ValueError(f"versions.plugins is a {_kind(plugins)}, expected {{distribution: version}}")
        for name, version in plugins.items():
            if version is not None and not isinstance(version, str):
                raise ValueError(f"versions.plugins.{name} is a {_kind(version)}, expected a version string or null")
        return value

    @field_validator("stability")
    @classmethod
    def _stability(cls, value: dict[str, Any]) -> dict[str, Any]:
        for monitor, block in value.items():
            if not isinstance(block, dict):
                continue  # not a monitor's block: the leaderboard reads nothing from it
            if CURVES_KEY in block:
                _check_curves(f"stability.{monitor}.{CURVES_KEY}", block[CURVES_KEY])
            for (plotted_monitor, key), shape in PLOTTED.items():
                if monitor == plotted_monitor and key in block:
                    where = f"stability.{monitor}.{key}"
                    if shape == "list":
                        _check_numbers(where, block[key])
                    elif not isinstance(block[key], dict):
                        raise ValueError(f"{where} is a {_kind(block[key])}, expected {{name: [numbers]}}")
                    else:
                        for name, values in block[key].items():
                            _check_numbers(f"{where}.{name}", values)
        return value


def _kind(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if _is_number(value) else type(value).__name__)


def _check_numbers(where: str, values: Any, allow_null: bool = True) -> None:
    if not isinstance(values, list):
        raise ValueError(f"{where} is a {_kind(values)}, expected a list of numbers")
    for i, v in enumerate(values):
        if not (_is_number(v) or (allow_null and v is None)):
            raise ValueError(f"{where}[{i}] is a {_kind(v)}, expected a number{' or null' if allow_null else ''}")


def _check_curves(where: str, curves: Any) -> None:
    """``{"step": [number, ...], name: [number or null, ...], ...}``. Lengths may differ (points are paired with
    steps from the start, as the plots do): a monitor may start a curve late."""
    if not isinstance(curves, dict):
        raise ValueError(f"{where} is a {_kind(curves)}, expected {{\"step\": [...], name: [...]}}")
    for name, values in curves.items():
        _check_numbers(f"{where}.{name}", values, allow_null=name != "step")


def check_file_content(raw: Any) -> None:
    """What every result file must satisfy beyond its fields' types: finite numbers, bounded nesting.

    Only for data read from (or about to be written to) a file: a run may hand over NaN, which writing stores
    as null (see :func:`json_safe`).
    """
    stack: list[tuple[Any, str, int]] = [(raw, "", 0)]
    while stack:  # iterative: a hostile file must not exhaust the interpreter's recursion limit
        value, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            shown = where if len(where) <= 60 else where[:60] + "..."
            raise ValueError(f"{shown or 'the result'} is nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{where}: {value} is not a finite number (non-finite numbers are stored as null)")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _LARGEST_FLOAT:
            raise ValueError(f"{where}: an integer of {len(str(abs(value)))} digits is beyond any float")
        if isinstance(value, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k), depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value))


_LARGEST_FLOAT = int(sys.float_info.max)


def upgrade(raw: dict[str, Any]) -> dict[str, Any]:
    """A version 1 result as version 2: trained from scratch, the last state kept, nothing else known."""
    if raw.get("schema_version") != 1:
        return raw
    upgraded = dict(raw)
    upgraded["schema_version"] = 2
    params = raw.get("params")
    budget = params.get("budget") if isinstance(params, dict) else None
    steps = budget.get("steps") if isinstance(budget, dict) else None
    upgraded.setdefault("protocol", "scratch")
    upgraded.setdefault("selection", {"rule": "last", "step": steps if isinstance(steps, int) else None})
    return upgraded


def json_safe(value: Any) -> Any:
    """Plain-Python, JSON-safe copy: scalars unwrapped, non-finite floats as None (JSON has no NaN)."""
    return _plain(value, lambda _: None)


def json_params(value: Any) -> Any:
    """Like :func:`json_safe`, but a non-finite float becomes ``"inf"``, ``"-inf"`` or ``"nan"`` (what ``float()``
    reads back), never null: a result must say which parameters ran."""
    return _plain(value, lambda x: "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf"))


def _plain(value: Any, non_finite: Callable[[float], Any]) -> Any:
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / torch scalars
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else non_finite(value)
    if isinstance(value, dict):
        return {str(k): _plain(v, non_finite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, non_finite) for v in value]
    return value
