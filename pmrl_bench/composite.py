"""Weighted sums of registered objectives, named in place of an objective: ``infonce+0.1*pmrl``.

Syntax: parts joined by ``+``, each ``[WEIGHT*]NAME``; WEIGHT is a finite number >= 0 (default 1), NAME a registered
objective. A name that is itself registered is that objective, never a composite. Result directories need a
path-safe name (letters, digits and ``. _ + -``), so the stored, canonical form writes ``x`` for ``*`` and drops
weights of 1: ``infonce+0.1xpmrl``; it parses back to the same composite. Exponents are written without ``+``
(``1e-3``, ``2e5``): ``+`` separates parts. The parts keep the order given (a different order is a different
name, and sums in a different order may differ in the last bit).

Each part is built with its own parameters (``--set objective.pmrl.tau1=0.5``); the composite's resolved
parameters are ``{"weights": {part: weight}, "parts": {part: {its parameters}}}``, so a result file records every
part's parameters and weight. :class:`CompositeObjective` holds the parts as submodules (their temperatures train),
adds ``weight × loss``, and reports every part's terms under ``part/term`` and each part's own loss under ``part``.
A part of weight 0 is a monitor: its loss and terms are reported, computed without gradient and on a forked
random state, so the run trains exactly as without it. A composite has a native score when exactly one part of
positive weight has one (that part's).
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pmrl_bench.components import ObjectiveOutput
from pmrl_bench.errors import UnknownNameError, UsageError
from pmrl_bench.registry import NAME_PATTERN, Component

if TYPE_CHECKING:
    from pmrl_bench.registry import Registry

SEPARATOR = "+"
TIMES = "*"
STORED_TIMES = "x"  # '*' cannot appear in a path
SYNTAX = "write parts joined by '+', each [WEIGHT*]NAME with WEIGHT a finite number >= 0 (e.g. infonce+0.1*pmrl)"
_STORED_PART = re.compile(r"^(\d+(?:\.\d*)?(?:e-?\d+)?)x(.+)$")  # the canonical weight, then 'x', then the name


@dataclass(frozen=True)
class Part:
    name: str
    weight: float = 1.0


def looks_composite(name: str, registered: Collection[str]) -> bool:
    """Whether an objective name that is not registered should be read as a composite."""
    if SEPARATOR in name or TIMES in name:
        return True
    match = _STORED_PART.match(name)
    return bool(match and match[2] in registered)


def parse(name: str, registered: Collection[str]) -> list[Part]:
    """The parts of a composite name (user or stored form); a malformed one is a one-line :class:`UsageError`."""
    parts = [_parse_part(name, text.strip(), registered) for text in name.split(SEPARATOR)]
    seen: set[str] = set()
    for part in parts:
        if part.name in seen:
            raise UsageError(f"composite objective {name!r}: {part.name!r} appears twice; "
                             "add its weights into one part")
        seen.add(part.name)
    if not any(part.weight > 0 for part in parts):
        raise UsageError(f"composite objective {name!r}: every weight is 0, so there is nothing to train")
    return parts


def _parse_part(name: str, text: str, registered: Collection[str]) -> Part:
    where = f"composite objective {name!r}"
    if not text:
        raise UsageError(f"{where}: empty part (a '+' at an end or two in a row); {SYNTAX}")
    if text in registered:
        return Part(text)
    stored = _STORED_PART.match(text)
    if TIMES in text:
        weight_text, _, part_name = text.partition(TIMES)
        weight_text, part_name = weight_text.strip(), part_name.strip()
    elif stored and stored[2] in registered:
        weight_text, part_name = stored[1], stored[2]
    else:
        raise UsageError(f"{where}: {UnknownNameError('objective', text, registered)}; {SYNTAX}")
    try:
        weight = float(weight_text)
    except ValueError:
        raise UsageError(f"{where}: malformed weight {weight_text!r} in part {text!r}; {SYNTAX}") from None
    if not math.isfinite(weight):
        raise UsageError(f"{where}: weight {weight_text!r} in part {text!r} is not finite; {SYNTAX}")
    if weight < 0:
        raise UsageError(f"{where}: weight {weight_text!r} in part {text!r} is negative; {SYNTAX}")
    if not part_name:
        raise UsageError(f"{where}: part {text!r} names no objective; {SYNTAX}")
    if part_name not in registered:
        raise UsageError(f"{where}: {UnknownNameError('objective', part_name, registered)}")
    return Part(part_name, weight)


def format_weight(weight: float) -> str:
    """The shortest text that reads back as ``weight``, without '+' (``0.1``, ``2``, ``1e-05``, ``1e16``)."""
    return repr(float(weight)).removesuffix(".0").replace("e+", "e")


def canonical_name(parts: Sequence[Part]) -> str:
    """The stored, path-safe name: ``infonce+0.1xpmrl``."""
    return SEPARATOR.join(p.name if p.weight == 1 else f"{format_weight(p.weight)}{STORED_TIMES}{p.name}"
                          for p in parts)


def display_name(name: str) -> str:
    """A composite's name for people, e.g. ``infonce + 0.1·pmrl`` from either form; any other name unchanged."""
    if SEPARATOR not in name and TIMES not in name and not _STORED_PART.match(name):
        return name
    shown = []
    for piece in (p.strip() for p in name.split(SEPARATOR)):
        stored = _STORED_PART.match(piece)
        if TIMES in piece:
            weight, _, part = piece.partition(TIMES)
        elif stored:
            weight, part = stored[1], stored[2]
        else:
            weight, part = "", piece
        shown.append(f"{weight.strip()}·{part.strip()}" if weight else part)
    return " + ".join(shown)


@dataclass
class CompositeComponent(Component):
    """A weighted sum of registered objectives, synthesised by the registry for a composite name."""

    parts: tuple[Part, ...] = ()
    part_components: tuple[Component, ...] = field(default=(), repr=False)

    @property
    def weights(self) -> dict[str, float]:
        return {p.name: p.weight for p in self.parts}

    def defaults(self) -> dict[str, Any]:
        return {"weights": self.weights, "parts": {c.name: c.defaults() for c in self.part_components}}

    def parameters(self) -> dict[str, inspect.Parameter]:
        keyword = inspect.Parameter.KEYWORD_ONLY
        return {key: inspect.Parameter(key, keyword, default=value) for key, value in self.defaults().items()}

    def accepts_any_parameter(self) -> bool:
        return False

    def resolve_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """``{"weights", "parts"}``: each part's defaults overlaid with ``params["parts"][part]``. The weights are
        fixed by the name; ``params["weights"]``, when given (e.g. read back from a result file), must match."""
        for key in params:
            if key not in ("weights", "parts"):
                raise UnknownNameError(f"parameter of composite objective {self.name!r} (set a part's with "
                                       "--set objective.PART.KEY=VALUE):", key, ("weights", "parts"))
        weights = params.get("weights")
        if weights is not None and {k: float(v) for k, v in dict(weights).items()} != self.weights:
            raise UsageError(f"composite objective {self.name!r} has weights {self.weights}, got {weights}; "
                             "the weights are part of the name")
        given = dict(params.get("parts") or {})
        for part in given:
            if part not in self.weights:
                raise UnknownNameError(f"part of composite objective {self.name!r}:", part, self.weights)
        return {
            "weights": self.weights,
            "parts": {c.name: c.resolve_params(dict(given.get(c.name) or {})) for c in self.part_components},
        }

    def create(self, **params: Any) -> CompositeObjective:
        resolved = self.resolve_params(params)
        modules = [(c.name, self.weights[c.name], c.create(**resolved["parts"][c.name])) for c in self.part_components]
        return CompositeObjective(modules)


def resolve(registry: Registry, name: str) -> CompositeComponent | None:
    """The registry's resolver for objective names: the composite a name such as ``infonce+0.1*pmrl`` spells,
    or None when the name is not a composite (the registry then reports it unknown)."""
    if not looks_composite(name, registry.names("objective")):
        return None
    return composite_component(registry, name)


def composite_component(registry: Registry, name: str) -> CompositeComponent:
    """The component behind a composite name, built from the registry's objectives."""
    registered = registry.names("objective")
    parts = tuple(parse(name, registered))
    canonical = canonical_name(parts)
    if not NAME_PATTERN.match(canonical):
        raise UsageError(
            f"composite objective {name!r} is stored as {canonical!r} ({len(canonical)} characters), "
            "which does not fit a results path (at most 64 characters); use fewer parts or shorter weights"
        )
    components = tuple(registry.get("objective", p.name) for p in parts)
    return CompositeComponent(
        "objective", canonical, f"{__name__}:CompositeObjective", "pmrl_bench.composite", "pmrl-bench", None,
        description=f"weighted sum: {display_name(canonical)}", parts=parts, part_components=components,
    )


class CompositeObjective(nn.Module):
    """``Σ weight × part loss`` over registered objectives; every part's terms reported as ``part/term``."""

    def __init__(self, parts: Sequence[tuple[str, float, nn.Module]]) -> None:
        super().__init__()
        self.names = [name for name, _, _ in parts]
        self.weights = [float(weight) for _, weight, _ in parts]
        self.parts = nn.ModuleList(module for _, _, module in parts)

    def forward(self, embeddings: Mapping[str, torch.Tensor]) -> ObjectiveOutput:
        loss: torch.Tensor | None = None
        terms: dict[str, torch.Tensor] = {}
        for name, weight, part in zip(self.names, self.weights, self.parts):
            if weight == 0:
                out = _monitor(part, embeddings)
            else:
                out = part(embeddings)
                weighted = out.loss if weight == 1 else weight * out.loss
                loss = weighted if loss is None else loss + weighted
            terms[name] = out.loss
            terms.update({f"{name}/{key}": value for key, value in out.terms.items()})
        assert loss is not None  # parse() rejects composites whose weights are all 0
        return ObjectiveOutput(loss=loss, terms=terms)

    def after_optimizer_step(self) -> None:
        for part in self.parts:
            step = getattr(part, "after_optimizer_step", None)
            if callable(step):
                step()

    def check_modalities(self, modalities: Sequence[str]) -> None:
        """Every part's check; the error names the part."""
        for name, part in zip(self.names, self.parts):
            check = getattr(part, "check_modalities", None)
            if callable(check):
                try:
                    check(modalities)
                except (ValueError, LookupError) as exc:
                    raise ValueError(f"part {name!r}: {exc}") from exc

    def _native_part(self) -> nn.Module | None:
        scored = [p for w, p in zip(self.weights, self.parts) if w > 0 and callable(getattr(p, "native_score", None))]
        return scored[0] if len(scored) == 1 else None

    def __getattr__(self, name: str) -> Any:
        # native_score / native_directions exist only when one trained part has them (evaluation uses getattr)
        if name in ("native_score", "native_directions"):
            part = self._native_part()
            if part is not None and hasattr(part, name):
                return getattr(part, name)
            raise AttributeError(name)
        return super().__getattr__(name)


def _monitor(part: nn.Module, embeddings: Mapping[str, torch.Tensor]) -> Any:
    """A weight-0 part's output: no gradient, and the global random state restored (dropout, sampling)."""
    devices = sorted({e.device.index or 0 for e in embeddings.values() if e.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        return part(embeddings)
