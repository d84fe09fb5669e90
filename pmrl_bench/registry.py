"""The registry: every component that plugins registered, with the plugin that registered it."""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pmrl_bench.errors import PluginError, UnknownNameError, UsageError
from pmrl_bench.hookspecs import Factory

Kind = Literal["objective", "encoder", "task"]
# Builds the component behind a name nobody registered (e.g. a weighted sum of objectives), or returns None.
Resolver = Callable[["Registry", str], "Component | None"]
KINDS: tuple[Kind, ...] = ("objective", "encoder", "task")

# Component names become directory names in the results tree, so keep them path-safe.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")

# Arguments that the runner supplies itself; they are not user parameters.
RUNNER_SUPPLIED = {"encoder": ("modality", "dim")}


@dataclass
class Component:
    """One registered component: how to build it and where it came from."""

    kind: Kind
    name: str
    factory_ref: Factory
    plugin: str
    distribution: str | None = None
    version: str | None = None
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    _factory: Callable[..., Any] | None = field(default=None, repr=False)

    @property
    def factory(self) -> Callable[..., Any]:
        """The factory, importing a lazy ``"module:attribute"`` reference on first use."""
        if self._factory is None:
            ref = self.factory_ref
            if isinstance(ref, str):
                module_name, _, attribute = ref.partition(":")
                try:
                    obj: Any = importlib.import_module(module_name)
                    for part in attribute.split("."):
                        obj = getattr(obj, part)
                except (ImportError, AttributeError) as exc:
                    raise PluginError(
                        f"{self.kind} {self.name!r} of plugin {self.plugin!r} cannot be imported from {ref!r}: {exc}"
                    ) from exc
                ref = obj
            if not callable(ref):
                raise PluginError(f"{self.kind} {self.name!r} of plugin {self.plugin!r} is not callable: {ref!r}")
            self._factory = ref
        return self._factory

    def summary(self) -> str:
        """The description, or the first line of the factory's docstring."""
        if self.description:
            return self.description
        doc = inspect.getdoc(self.factory) or ""
        return doc.splitlines()[0] if doc else ""

    def parameters(self) -> dict[str, inspect.Parameter]:
        """User-settable parameters, from the factory's signature."""
        try:
            signature = inspect.signature(self.factory)
        except (TypeError, ValueError):
            return {}
        skip = RUNNER_SUPPLIED.get(self.kind, ())
        return {
            name: p
            for name, p in signature.parameters.items()
            if name not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }

    def accepts_any_parameter(self) -> bool:
        try:
            signature = inspect.signature(self.factory)
        except (TypeError, ValueError):
            return True
        return any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())

    def defaults(self) -> dict[str, Any]:
        """Every parameter with a default, as the factory would use it."""
        return {name: p.default for name, p in self.parameters().items() if p.default is not p.empty}

    def resolve_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with ``params``; an unknown key is a usage error naming the valid ones."""
        known = self.parameters()
        supplied = RUNNER_SUPPLIED.get(self.kind, ())
        if not self.accepts_any_parameter():
            for key in params:
                if key not in known and key not in supplied:
                    raise UnknownNameError(f"parameter of {self.kind} {self.name!r}:", key, known)
        return {**self.defaults(), **{k: v for k, v in params.items() if k not in supplied}}

    def create(self, **params: Any) -> Any:
        """Build the component; a factory that rejects its parameters gives a usage error."""
        self.resolve_params(params)
        try:
            return self.factory(**params)
        except (TypeError, ValueError) as exc:
            supplied = RUNNER_SUPPLIED.get(self.kind, ())  # the modality and dimension are not the user's doing
            shown = ", ".join(f"{k}={v!r}" for k, v in params.items() if k not in supplied) or "no parameters"
            raise UsageError(f"{self.kind} {self.name!r} rejected {shown}: {exc}") from exc


class Registry:
    """Components by kind and name. Built by the plugin manager; read by everything else."""

    def __init__(self) -> None:
        self._components: dict[Kind, dict[str, Component]] = {kind: {} for kind in KINDS}
        self._resolvers: dict[Kind, list[Resolver]] = {kind: [] for kind in KINDS}

    def add(self, component: Component) -> None:
        if not NAME_PATTERN.match(component.name):
            raise PluginError(
                f"plugin {component.plugin!r} registered an invalid {component.kind} name {component.name!r}: "
                "use letters, digits and . _ + - (at most 64 characters, starting with a letter or digit)"
            )
        existing = self._components[component.kind].get(component.name)
        if existing is not None:
            raise PluginError(
                f"{component.kind} {component.name!r} is registered twice: by plugin {existing.plugin!r} "
                f"and by plugin {component.plugin!r}; uninstall one, or limit plugins with PMRL_BENCH_LOAD_PLUGINS"
            )
        self._components[component.kind][component.name] = component

    def add_resolver(self, kind: Kind, resolver: Resolver) -> None:
        """Let ``resolver`` build components for names of ``kind`` that nobody registered (tried in order)."""
        self._resolvers[kind].append(resolver)

    def get(self, kind: Kind, name: str) -> Component:
        """The component registered as ``name``, or the one a resolver builds for it (for an objective, a weighted
        sum such as ``infonce+0.1*pmrl``: see :mod:`pmrl_bench.composite`)."""
        found = self._components[kind].get(name)
        if found is not None:
            return found
        for resolver in self._resolvers[kind]:
            built = resolver(self, name)
            if built is not None:
                return built
        raise UnknownNameError(kind, name, self._components[kind])

    def names(self, kind: Kind) -> list[str]:
        return list(self._components[kind])

    def components(self, kind: Kind | None = None) -> Iterator[Component]:
        for k in KINDS if kind is None else (kind,):
            yield from self._components[k].values()

    def importable(self, kind: Kind, names: Iterable[str]) -> tuple[list[str], list[PluginError]]:
        """``names`` whose factory can be imported (in order), and the error of each that cannot.

        For defaults (every objective, the default tasks): a plugin whose lazy ``"module:attribute"`` factory
        is broken is left out with a warning instead of stopping a sweep that did not ask for it.
        """
        usable, problems = [], []
        for name in names:
            try:
                self.get(kind, name).factory
            except PluginError as exc:
                problems.append(exc)
            else:
                usable.append(name)
        return usable, problems

    def default_encoder_for(self, modality_kind: str) -> Component:
        """The encoder that registered itself as the default for a modality kind (first registration wins)."""
        for component in self._components["encoder"].values():
            if modality_kind in component.metadata.get("default_for", ()):
                return component
        raise UsageError(
            f"no encoder is registered as the default for modality kind {modality_kind!r}; "
            f"name one with --encoder MODALITY=NAME (available: {', '.join(self.names('encoder')) or 'none'})"
        )

    def default_tasks(self) -> list[str]:
        return [c.name for c in self._components["task"].values() if c.metadata.get("default_suite")]
