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


def origin(component: Component) -> str:
    """``plugin 'name' (distribution dist)``: who registered ``component``."""
    where = f" (distribution {component.distribution})" if component.distribution else ""
    return f"plugin {component.plugin!r}{where}"


@dataclass
class Clash:
    """A name that cannot be used: registered by several plugins (or twice by one), or not a valid name."""

    kind: str  # a Kind, or "reporter"
    name: str
    components: list[Component]
    invalid: bool  # the name breaks NAME_PATTERN; otherwise it is registered more than once

    def message(self) -> str:
        who = " and by ".join(origin(c) for c in self.components)
        if self.invalid:
            return (f"{who} registered an invalid {self.kind} name {self.name!r}: use letters, digits and . _ + - "
                    "(at most 64 characters, starting with a letter or digit)")
        times = "twice" if len(self.components) == 2 else f"{len(self.components)} times"
        return (f"{self.kind} {self.name!r} is registered {times}: by {who}; no command can "
                "use it until you uninstall one, or limit plugins with PMRL_BENCH_LOAD_PLUGINS")


def place(component: Component, table: dict[str, Component], clashes: dict[str, Clash]) -> None:
    """Put ``component`` in ``table`` by name, or, if its name is invalid or already taken, take the name out of
    ``table`` and record the clash, so that neither registration is used by mistake."""
    clash = clashes.get(component.name)
    if clash is not None:
        clash.components.append(component)
    elif not NAME_PATTERN.match(component.name):
        clashes[component.name] = Clash(component.kind, component.name, [component], invalid=True)
    elif component.name in table:
        clashes[component.name] = Clash(component.kind, component.name, [table.pop(component.name), component],
                                        invalid=False)
    else:
        table[component.name] = component


class Registry:
    """Components by kind and name. Built by the plugin manager; read by everything else."""

    def __init__(self) -> None:
        self._components: dict[Kind, dict[str, Component]] = {kind: {} for kind in KINDS}
        self._resolvers: dict[Kind, list[Resolver]] = {kind: [] for kind in KINDS}
        self._clashes: dict[Kind, dict[str, Clash]] = {kind: {} for kind in KINDS}

    def add(self, component: Component) -> None:
        """Register ``component``. An invalid name, or a name registered twice, is not an error here: the name is
        recorded as a :class:`Clash` (see :meth:`clashes`), is left out of :meth:`names` and :meth:`components`,
        and :meth:`get` refuses it, so that only a command that would use it fails."""
        place(component, self._components[component.kind], self._clashes[component.kind])

    def clashes(self) -> list[Clash]:
        """Every name that was registered twice or is invalid, in the order they were found."""
        return [clash for kind in KINDS for clash in self._clashes[kind].values()]

    def refuse_clashes(self, kind: Kind, names: Iterable[str]) -> None:
        """Raise the clash of the first of ``names`` that is a clash: a command checks what it will use before it
        warns about the rest, so that it fails with one line."""
        for name in names:
            clash = self._clashes[kind].get(name)
            if clash is not None:
                raise PluginError(clash.message())

    def add_resolver(self, kind: Kind, resolver: Resolver) -> None:
        """Let ``resolver`` build components for names of ``kind`` that nobody registered (tried in order)."""
        self._resolvers[kind].append(resolver)

    def get(self, kind: Kind, name: str) -> Component:
        """The component registered as ``name``, or the one a resolver builds for it (for an objective, a weighted
        sum such as ``infonce+0.1*pmrl``: see :mod:`pmrl_bench.composite`)."""
        found = self._components[kind].get(name)
        if found is not None:
            return found
        clash = self._clashes[kind].get(name)
        if clash is not None:
            raise PluginError(clash.message())
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
        for clash in self._clashes["encoder"].values():  # the default is ambiguous: name the clash, not "none"
            if any(modality_kind in c.metadata.get("default_for", ()) for c in clash.components):
                raise PluginError(f"no default encoder for modality kind {modality_kind!r}: {clash.message()}")
        for component in self._components["encoder"].values():
            if modality_kind in component.metadata.get("default_for", ()):
                return component
        raise UsageError(
            f"no encoder is registered as the default for modality kind {modality_kind!r}; "
            f"name one with --encoder MODALITY=NAME (available: {', '.join(self.names('encoder')) or 'none'})"
        )

    def default_tasks(self) -> list[str]:
        return [c.name for c in self._components["task"].values() if c.metadata.get("default_suite")]
