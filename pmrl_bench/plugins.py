"""The plugin manager: a thin facade over pluggy that loads built-ins and entry-point plugins,
isolates broken plugins, and builds the registry with each component's provenance.

Environment variables:

* ``PMRL_BENCH_LOAD_PLUGINS``: comma-separated distribution or entry-point names of the external plugins
  to load; empty loads none; unset loads all. Built-ins always load. A name that matches no installed plugin
  is reported (a warning, or an error under ``PMRL_BENCH_STRICT_PLUGINS``).
* ``PMRL_BENCH_STRICT_PLUGINS=1``: every plugin problem is an error, not a warning: a plugin that fails to load
  or register, and a name registered twice or invalid (for plugin authors and CI).

Plugins cannot break the host: what a plugin prints while it is imported or registers goes to stderr, never stdout
(which may hold ``--json`` output); a plugin that raises or exits is skipped; and a name two plugins register (or an
invalid one) is a :class:`~pmrl_bench.registry.Clash`: both registrations are set aside with a warning, and only a
command that uses the name fails.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from pmrl_bench import hookspecs
from pmrl_bench.errors import Interrupted, PluginError
from pmrl_bench.registry import Clash, Component, Kind, Registry, place

ENTRY_POINT_GROUP = "pmrl_bench"
ENV_LOAD_PLUGINS = "PMRL_BENCH_LOAD_PLUGINS"
ENV_STRICT = "PMRL_BENCH_STRICT_PLUGINS"

# Built-in components are plugins like any other; they register through the same hooks.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "pmrl_bench.builtins.objectives",
    "pmrl_bench.builtins.encoders",
    "pmrl_bench.builtins.tasks",
    "pmrl_bench.builtins.reporters",
)

_HOOK_KIND: dict[str, Kind] = {
    "register_objectives": "objective",
    "register_encoders": "encoder",
    "register_tasks": "task",
}


@dataclass
class PluginFailure:
    """A plugin that could not be loaded or that raised while registering."""

    plugin: str
    distribution: str | None
    # "load", the hook name, "select" (named in PMRL_BENCH_LOAD_PLUGINS, not installed), "import", or "clash" (a name
    # registered twice or invalid: ``error`` says whose)
    stage: str
    error: str

    @classmethod
    def of_clash(cls, clash: Clash) -> PluginFailure:
        last = clash.components[-1]
        return cls(last.plugin, last.distribution, "clash", clash.message())

    def message(self, skipped: bool = True) -> str:
        if self.stage == "select":
            return f"{ENV_LOAD_PLUGINS} names {self.plugin!r}: {self.error}"
        if self.stage == "clash":
            return self.error
        where = f" (distribution {self.distribution})" if self.distribution else ""
        outcome = " and was skipped" if skipped else ""
        return f"plugin {self.plugin!r}{where} failed during {self.stage}{outcome}: {self.error}"


@dataclass
class PluginInfo:
    name: str
    distribution: str | None
    version: str | None
    builtin: bool
    hooks: list[str] = field(default_factory=list)


def _strict() -> bool:
    return os.environ.get(ENV_STRICT, "").strip().lower() in {"1", "true", "yes", "on"}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):  # sys.exit() in a plugin must not end the command (with status 0, say)
        return f"SystemExit({exc.code!r}): a plugin must raise an exception, not exit the process"
    return f"{type(exc).__name__}: {exc}"


def _interrupted_in(plugin: str, dist: str | None, stage: str) -> Interrupted:
    """Ctrl-C (or a KeyboardInterrupt the plugin raised) while a plugin's code ran: say whose code it was."""
    where = f" (distribution {dist})" if dist else ""
    return Interrupted(signal.SIGINT, f"interrupted during {stage} of plugin {plugin!r}{where}; if you did not "
                                      f"press Ctrl-C, the plugin raised KeyboardInterrupt: leave it out with "
                                      f"{ENV_LOAD_PLUGINS}")


def _plugin_code() -> contextlib.AbstractContextManager[Any]:
    """Around a plugin's import or hook: what it prints goes to stderr, so stdout holds only pmrl-bench's output."""
    return contextlib.redirect_stdout(sys.stderr)


def _allowed_external() -> set[str] | None:
    """None means every external plugin; an empty set means none."""
    raw = os.environ.get(ENV_LOAD_PLUGINS)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def composite_objectives(registry: Registry, name: str) -> Component | None:
    """The registry's resolver for weighted sums of objectives (``infonce+0.1*pmrl``); it imports the composite
    module, and with it torch, only when a name could be one."""
    if not any(c in name for c in "+*x"):
        return None
    from pmrl_bench import composite

    return composite.resolve(registry, name)


class PluginManager:
    """Loads plugins once and builds the :class:`Registry` on demand."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        self._info: dict[str, PluginInfo] = {}
        self._loaded = False
        self._registry: Registry | None = None
        self._reporter_clashes: list[Clash] = []

    # -- loading ---------------------------------------------------------------------------------
    def load(self) -> None:
        """Register the built-ins, then every allowed entry-point plugin. Idempotent."""
        if self._loaded:
            return
        self._loaded = True
        from pmrl_bench._version import __version__

        for module_name in DEFAULT_PLUGINS:
            module = importlib.import_module(module_name)
            self._register(module, module_name, "pmrl-bench", __version__, builtin=True)
        self._load_entry_points()

    def _load_entry_points(self) -> None:
        allowed = _allowed_external()
        entry_points = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
        if allowed:
            installed = {ep.name for ep in entry_points} | {ep.dist.name for ep in entry_points if ep.dist is not None}
            for name in sorted(allowed - installed):
                self._fail(PluginFailure(name, None, "select", "no installed plugin has that entry-point or "
                                         f"distribution name (installed: {', '.join(sorted(installed)) or 'none'})"))
        for ep in entry_points:
            dist = ep.dist.name if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            if allowed is not None and ep.name not in allowed and (dist is None or dist not in allowed):
                continue
            if self.pm.has_plugin(ep.name):
                continue
            try:
                with _plugin_code():
                    plugin = ep.load()
            except KeyboardInterrupt:
                raise _interrupted_in(ep.name, dist, "the import") from None
            except (Exception, SystemExit) as exc:  # one broken plugin must not take the CLI down
                self._fail(PluginFailure(ep.name, dist, "load", _describe(exc)))
                continue
            self._register(plugin, ep.name, dist, version, builtin=False)

    def _register(self, plugin: Any, name: str, dist: str | None, version: str | None, *, builtin: bool) -> None:
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()  # a hook the spec does not know is a typo in the plugin
        except (Exception, SystemExit) as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            if builtin:
                raise
            self._fail(PluginFailure(name, dist, "load", _describe(exc)))
            return
        hooks = [caller.name for caller in self.pm.get_hookcallers(plugin) or []]
        self._info[name] = PluginInfo(name, dist, version, builtin, sorted(hooks))
        self._registry = None

    def register_plugin(self, plugin: ModuleType | object, name: str | None = None) -> str:
        """Register an in-process plugin (a module or an object with ``@hookimpl`` methods), e.g. in tests."""
        self.load()
        name = name or getattr(plugin, "__name__", None) or f"inline-{id(plugin)}"
        if self.pm.has_plugin(name):
            raise PluginError(f"a plugin named {name!r} is already registered")
        self._register(plugin, name, None, None, builtin=False)
        return name

    def unregister_plugin(self, name: str) -> None:
        self.pm.unregister(name=name)
        self._info.pop(name, None)
        self._registry = None

    def _fail(self, failure: PluginFailure) -> None:
        if _strict():
            raise PluginError(failure.message(skipped=False) + f" ({ENV_STRICT} is set)")
        if failure not in self.failures:  # the registry and the reporters are collected again after a change
            self.failures.append(failure)

    # -- the registry ----------------------------------------------------------------------------
    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self.load()
            self._registry = self._collect()
        return self._registry

    def _collect(self) -> Registry:
        registry = Registry()
        registry.add_resolver("objective", composite_objectives)
        for hook_name, kind in _HOOK_KIND.items():
            hook = getattr(self.pm.hook, hook_name)
            for impl in hook.get_hookimpls():  # registration order: built-ins first
                info = self._info.get(impl.plugin_name)
                dist = info.distribution if info else None
                version = info.version if info else None
                pending: list[Component] = []
                register = self._make_register(kind, impl.plugin_name, dist, version, pending)
                try:
                    with _plugin_code():
                        impl.function(**{arg: register for arg in impl.argnames})
                except KeyboardInterrupt:
                    raise _interrupted_in(impl.plugin_name, dist, hook_name) from None
                except (Exception, SystemExit) as exc:  # a plugin that raises while registering is skipped, not fatal
                    if info is not None and info.builtin:
                        raise
                    self._fail(PluginFailure(impl.plugin_name, dist, hook_name, _describe(exc)))
                    continue
                for component in pending:
                    registry.add(component)  # a duplicate or invalid name becomes a clash, reported below
        for clash in registry.clashes():
            self._fail(PluginFailure.of_clash(clash))
        return registry

    @staticmethod
    def _make_register(
        kind: Kind, plugin: str, dist: str | None, version: str | None, sink: list[Component]
    ) -> Callable[..., None]:
        def register(name: str, factory: hookspecs.Factory, *, description: str = "", **metadata: Any) -> None:
            if not isinstance(name, str):
                raise PluginError(f"plugin {plugin!r} registered a {kind} whose name is not a string: {name!r}")
            if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
                raise PluginError(
                    f"plugin {plugin!r} registered {kind} {name!r} with {factory!r}; "
                    "expected a callable or a 'module:attribute' string"
                )
            sink.append(Component(kind, name, factory, plugin, dist, version, description, dict(metadata)))

        return register

    # -- reporters (run --log NAME) ------------------------------------------------------------------
    def reporters(self, require: Sequence[str] = ()) -> dict[str, Component]:
        """Every usable reporter by name (``kind == "reporter"``), collected afresh on each call (it is called
        once per command). A plugin that raises while registering is a failure like any other; a duplicate or
        invalid name is a clash, left out with a warning, and an error if ``require`` (what the command will use,
        e.g. ``--log``) names it."""
        self.load()
        found: dict[str, Component] = {}
        clashes: dict[str, Clash] = {}
        for impl in self.pm.hook.register_reporters.get_hookimpls():
            info = self._info.get(impl.plugin_name)
            dist, version = (info.distribution, info.version) if info else (None, None)
            pending: list[Component] = []
            register = self._make_register("reporter", impl.plugin_name, dist, version, pending)  # type: ignore[arg-type]
            try:
                with _plugin_code():
                    impl.function(**{arg: register for arg in impl.argnames})
            except KeyboardInterrupt:
                raise _interrupted_in(impl.plugin_name, dist, "register_reporters") from None
            except (Exception, SystemExit) as exc:  # as for components: a broken plugin is skipped, a built-in raises
                if info is not None and info.builtin:
                    raise
                self._fail(PluginFailure(impl.plugin_name, dist, "register_reporters", _describe(exc)))
                continue
            for component in pending:
                place(component, found, clashes)
        self._reporter_clashes = list(clashes.values())
        for clash in clashes.values():
            self._fail(PluginFailure.of_clash(clash))
        for name in require:
            if name in clashes:
                raise PluginError(clashes[name].message())
        return found

    # -- introspection -----------------------------------------------------------------------------
    def clashes(self) -> list[Clash]:
        """Every name registered twice or invalid: components, and reporters as last collected."""
        return [*self.registry.clashes(), *self._reporter_clashes]

    def plugins(self) -> list[PluginInfo]:
        self.load()
        return list(self._info.values())

    def versions(self) -> dict[str, str | None]:
        """``{distribution: version}`` of every loaded external plugin, for result files."""
        return {i.distribution or i.name: i.version for i in self.plugins() if not i.builtin}


# The process-wide manager, as in tox and llm.
MANAGER = PluginManager()


def get_registry() -> Registry:
    return MANAGER.registry
