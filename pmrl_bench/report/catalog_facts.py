"""What ``pmrl-bench list`` tells beyond names and parameters: the numbers of modalities each objective accepts
(``--params``), and each task's data card (``--params`` and ``--json``), as JSON facts and as indented lines."""

from __future__ import annotations

from typing import Any

from pmrl_bench.cards import DataCard, fallback_card, task_card
from pmrl_bench.console import escape, shorten
from pmrl_bench.modality_counts import declared_counts, describe_counts
from pmrl_bench.registry import Component

VALUE_LIMIT = 400  # characters of one shown value (a plugin's citation or description can be any length)


def _problem(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if not str(exc).startswith(("task ", "objective ")) else str(exc)


def card_of(component: Component) -> tuple[DataCard, str | None]:
    """The data card of the task built with its defaults, or (for a task that needs parameters first, or whose card
    fails) its fallback card and why."""
    try:
        description = component.summary()
    except Exception:  # noqa: BLE001 - a plugin whose factory cannot be imported: its description says so elsewhere
        description = component.description
    try:
        return task_card(component.create(), component.name, description), None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plugin's failure, shown as a note, never a crash
        return fallback_card(component.name, description), _problem(exc)


def entry_facts(component: Component, params: bool) -> dict[str, Any]:
    """Extra keys of a ``list`` entry: ``card`` (and ``card_note``) for a task; ``modalities`` (accepted counts, null
    for any number) for an objective with ``params`` (reading a class attribute imports the factory)."""
    if component.kind == "task":
        card, note = card_of(component)
        return {"card": card.as_json(), **({"card_note": note} if note else {})}
    if component.kind == "objective" and params:
        try:
            counts = declared_counts(component)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a malformed declaration or a broken import
            return {"modalities": None, "modalities_error": _problem(exc)}
        return {"modalities": None if counts is None else list(counts)}
    return {}


def _value(value: object) -> str:
    return escape(shorten(str(value), VALUE_LIMIT))


def fact_lines(entry: dict[str, Any], indent: str = "    ") -> list[str]:
    """The entry's facts as lines for the terminal (every value escaped and cut)."""
    if "modalities_error" in entry:
        return [f"{indent}modalities: unknown ({_value(entry['modalities_error'])})"]
    if "modalities" in entry and entry.get("kind") == "objective":
        counts = entry["modalities"]
        return [f"{indent}modalities: {describe_counts(None if counts is None else tuple(counts))}"]
    card = entry.get("card")
    if not card:
        return []
    inner = indent + "  "
    lines = [f"{indent}data card: {_value(card['name'])}"]
    if entry.get("card_note"):
        lines.append(f"{inner}(the full card comes from its data once its parameters are set; with its defaults: "
                     f"{_value(entry['card_note'])})")
    lines += [f"{inner}{key}: {_value(card[key])}" for key in ("description", "source", "homepage", "licence",
                                                                  "citation") if card.get(key)]
    if card["modalities"]:
        shown = ", ".join(f"{m['name']} ({m['kind']}, {'x'.join(map(str, m['shape']))})" for m in card["modalities"])
        lines.append(f"{inner}modalities: {_value(shown)}")
    facts = [f"{card['num_classes']} classes" if card["num_classes"] else "no labels"] if card["modalities"] else []
    if card["splits"]:
        facts.append("splits: " + ", ".join(f"{k} {v}" for k, v in card["splits"].items()))
    if facts:
        lines.append(f"{inner}{'; '.join(facts)}")
    lines += [f"{inner}file: {_value(name)} sha256 {_value(digest)}" for name, digest in card["files"].items()]
    return lines
