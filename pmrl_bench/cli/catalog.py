"""``list`` and ``plugins``: what is registered, and by whom."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from pmrl_bench.cli.output import emit_json, warn_plugin_failures, write
from pmrl_bench.console import escape, shorten, shorten_words
from pmrl_bench.errors import PmrlBenchError

if TYPE_CHECKING:
    from pmrl_bench.registry import Component


def add_parsers(commands: argparse._SubParsersAction) -> None:
    lister = commands.add_parser("list", help="registered components and the plugin behind each")
    lister.add_argument("kind", nargs="?", choices=["objectives", "encoders", "tasks"], help="one kind only")
    lister.add_argument("--params", action="store_true",
                        help="each component's parameters (for --set): type, default and meaning")
    lister.add_argument("--json", action="store_true", help="machine-readable output")

    plugins = commands.add_parser("plugins", help="installed plugins, their versions and what each registered")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")


def _summary(component: Component) -> str:
    """The registered description, else the factory's docstring; a factory that fails to import says so (whatever
    its module raises: a plugin's import error must not take ``list`` down)."""
    try:
        return str(component.summary())
    except PmrlBenchError as exc:
        return f"(unavailable: {exc})"
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plugin's import-time failure, shown in one line
        return f"(unavailable: {type(exc).__name__}: {exc})"


def _entry(component: Component, clash: str | None) -> dict[str, Any]:
    c = component
    entry = {
        "kind": c.kind, "name": c.name, "plugin": c.plugin, "distribution": c.distribution,
        "version": c.version, "description": _summary(c),
        **({"default_suite": bool(c.metadata.get("default_suite"))} if c.kind == "task" else {}),
        **({"modality_kinds": list(c.metadata.get("modality_kinds", ()))} if c.kind == "encoder" else {}),
    }
    if clash is not None:  # registered, but no command can use the name: why
        entry["clash"] = clash
    return entry


def cmd_list(args: argparse.Namespace) -> int:
    from pmrl_bench.plugins import MANAGER

    registry = MANAGER.registry
    MANAGER.reporters()  # not listed here, but a reporter that clashes is a plugin problem to warn about
    warn_plugin_failures()
    kinds = [args.kind[:-1]] if args.kind else ["objective", "encoder", "task"]
    listed: list[tuple[Component, str | None]] = [
        (c, None) for kind in kinds for c in registry.components(kind)]  # type: ignore[arg-type]
    listed += [(c, clash.message()) for clash in registry.clashes() if clash.kind in kinds for c in clash.components]
    entries = [_entry(c, clash) for c, clash in listed]
    if args.params or args.json:  # accepted modality counts (objectives) and data cards (tasks)
        from pmrl_bench.report.catalog_facts import entry_facts

        for (component, clash), e in zip(listed, entries, strict=True):
            e.update(entry_facts(component, args.params) if clash is None else {})
    described = {}
    if args.params:
        from pmrl_bench.report.parameters import try_describe

        for index, ((component, _), e) in enumerate(zip(listed, entries, strict=True)):
            infos, problem = described[index] = try_describe(component)
            e["params"] = None if problem else [i.as_json() for i in infos]
            if problem:
                e["params_error"] = problem
    if args.json:
        emit_json(entries)
        return 0
    for kind in kinds:
        rows = [(i, e) for i, e in enumerate(entries) if e["kind"] == kind]
        write(f"{kind}s:")
        names = {i: escape(shorten(e["name"], 64)) for i, e in rows}
        width = max((len(name) for name in names.values()), default=0)
        for i, e in rows:
            clash = f"  (unusable: {e['clash']})" if "clash" in e else ""
            write(f"  {names[i]:<{width}}  [{escape(e['plugin'])}]  {escape(shorten(e['description'], 300))}"
                  f"{escape(clash)}")
            if args.params:
                from pmrl_bench.report.parameters import parameter_table

                from pmrl_bench.report.catalog_facts import fact_lines

                infos, problem = described[i]
                write(f"    (parameters unavailable: {shorten(problem)})" if problem else parameter_table(infos))
                for line in fact_lines(e):
                    write(line)
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from pmrl_bench.plugins import MANAGER

    registry = MANAGER.registry
    reporters = MANAGER.reporters()
    warn_plugin_failures()
    clashing = [c for clash in MANAGER.clashes() for c in clash.components]
    entries = []
    for info in MANAGER.plugins():
        registered = {
            kind + "s": [c.name for c in registry.components(kind) if c.plugin == info.name]  # type: ignore[arg-type]
            for kind in ("objective", "encoder", "task")
        }
        registered["reporters"] = [name for name, c in reporters.items() if c.plugin == info.name]
        clashes = [f"{c.kind} {c.name}" for c in clashing if c.plugin == info.name]
        entries.append({"name": info.name, "distribution": info.distribution, "version": info.version,
                        "builtin": info.builtin, "hooks": info.hooks, "registered": registered, "clashes": clashes})
    failures = [vars(f) for f in MANAGER.failures]
    if args.json:
        emit_json({"plugins": entries, "failures": failures})
        return 0
    for e in entries:
        what = "; ".join(f"{k}: {', '.join(v)}" for k, v in e["registered"].items() if v) or "nothing"
        if e["clashes"]:
            what += f"; unusable (registered by another plugin too, or invalid): {', '.join(e['clashes'])}"
        origin = "built-in" if e["builtin"] else f"{e['distribution'] or 'in-process'} {e['version'] or ''}".strip()
        write(f"{escape(e['name'])} ({escape(origin)}): {escape(shorten_words(what))}")
    return 0
