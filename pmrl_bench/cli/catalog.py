"""``list`` and ``plugins``: what is registered, and by whom."""

from __future__ import annotations

import argparse
import json

from pmrl_bench.cli.output import warn_plugin_failures
from pmrl_bench.errors import PmrlBenchError


def add_parsers(commands: argparse._SubParsersAction) -> None:
    lister = commands.add_parser("list", help="registered components and the plugin behind each")
    lister.add_argument("kind", nargs="?", choices=["objectives", "encoders", "tasks"], help="one kind only")
    lister.add_argument("--params", action="store_true",
                        help="each component's parameters (for --set): type, default and meaning")
    lister.add_argument("--json", action="store_true", help="machine-readable output")

    plugins = commands.add_parser("plugins", help="installed plugins, their versions and what each registered")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")


def _summary(component) -> str:
    """The registered description, else the factory's docstring; a factory that fails to import says so."""
    try:
        return component.summary()
    except PmrlBenchError as exc:
        return f"(unavailable: {exc})"


def cmd_list(args: argparse.Namespace) -> int:
    from pmrl_bench.plugins import MANAGER

    registry = MANAGER.registry
    warn_plugin_failures()
    kinds = [args.kind[:-1]] if args.kind else ["objective", "encoder", "task"]
    entries = [
        {
            "kind": c.kind, "name": c.name, "plugin": c.plugin, "distribution": c.distribution,
            "version": c.version, "description": _summary(c),
            **({"default_suite": bool(c.metadata.get("default_suite"))} if c.kind == "task" else {}),
            **({"modality_kinds": list(c.metadata.get("modality_kinds", ()))} if c.kind == "encoder" else {}),
        }
        for kind in kinds
        for c in registry.components(kind)  # type: ignore[arg-type]
    ]
    described = {}
    if args.params:
        from pmrl_bench.report.parameters import try_describe

        described = {(e["kind"], e["name"]): try_describe(registry.get(e["kind"], e["name"])) for e in entries}
        for e in entries:
            infos, problem = described[(e["kind"], e["name"])]
            e["params"] = None if problem else [i.as_json() for i in infos]
            if problem:
                e["params_error"] = problem
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    for kind in kinds:
        rows = [e for e in entries if e["kind"] == kind]
        print(f"{kind}s:")
        width = max((len(e["name"]) for e in rows), default=0)
        for e in rows:
            print(f"  {e['name']:<{width}}  [{e['plugin']}]  {e['description']}")
            if args.params:
                from pmrl_bench.report.parameters import parameter_table

                infos, problem = described[(e["kind"], e["name"])]
                print(f"    (parameters unavailable: {problem})" if problem else parameter_table(infos))
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from pmrl_bench.plugins import MANAGER

    registry = MANAGER.registry
    reporters = MANAGER.reporters()
    warn_plugin_failures()
    entries = []
    for info in MANAGER.plugins():
        registered = {
            kind + "s": [c.name for c in registry.components(kind) if c.plugin == info.name]  # type: ignore[arg-type]
            for kind in ("objective", "encoder", "task")
        }
        registered["reporters"] = [name for name, c in reporters.items() if c.plugin == info.name]
        entries.append({"name": info.name, "distribution": info.distribution, "version": info.version,
                        "builtin": info.builtin, "hooks": info.hooks, "registered": registered})
    failures = [vars(f) for f in MANAGER.failures]
    if args.json:
        print(json.dumps({"plugins": entries, "failures": failures}, indent=2))
        return 0
    for e in entries:
        what = "; ".join(f"{k}: {', '.join(v)}" for k, v in e["registered"].items() if v) or "nothing"
        origin = "built-in" if e["builtin"] else f"{e['distribution'] or 'in-process'} {e['version'] or ''}".strip()
        print(f"{e['name']} ({origin}): {what}")
    return 0
