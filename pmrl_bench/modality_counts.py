"""How many modalities an objective accepts, and whether it applies to a task.

An objective declares the counts it accepts in either of two places (both may be used; a count must pass both):

* where it registers: ``register("my-loss", factory, modalities=(3,))`` (any iterable of integers >= 2, e.g.
  ``range(2, 9)``), plain data, so ``pmrl-bench list`` needs no import;
* as an ``accepted_modalities`` attribute of its class, or of the built module when its parameters fix the count
  (ConFu builds one fusion head per pair of the ``modalities`` it is given).

Nothing declared means any number (2 or more). A sweep reports an objective whose counts exclude a task's number of
modalities as not applicable to that task, one line, and records its runs as such instead of failing them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pmrl_bench.errors import PluginError
from pmrl_bench.registry import Component

ATTRIBUTE = "accepted_modalities"
METADATA_KEY = "modalities"
Counts = tuple[int, ...]


def normalise(value: Any, owner: str) -> Counts:
    """``value`` as a sorted tuple of distinct counts, or a plugin error saying what a declaration must be."""
    counts: list[int] = []
    try:
        items = list(value) if not isinstance(value, (str, bytes)) else None
    except TypeError:
        items = None
    if items is not None:
        counts = [c for c in items if isinstance(c, int) and not isinstance(c, bool) and c >= 2]
    if not items or len(counts) != len(items):
        raise PluginError(f"{owner} declares accepted modality counts {value!r}; expected integers of 2 or more, "
                          "e.g. (3,) or range(2, 9)")
    return tuple(sorted(set(counts)))


def _intersect(declared: Iterable[Counts | None]) -> Counts | None:
    result: set[int] | None = None
    for counts in declared:
        if counts is not None:
            result = set(counts) if result is None else result & set(counts)
    return None if result is None else tuple(sorted(result))


def _attribute(holder: Any, owner: str) -> Counts | None:
    value = getattr(holder, ATTRIBUTE, None)
    if value is None or isinstance(value, property):  # a property is the instance's business, read after building
        return None
    return normalise(value, owner)


def _owner(component: Component) -> str:
    return f"objective {component.name!r} of plugin {component.plugin!r}"


def declared_counts(component: Component) -> Counts | None:
    """The counts ``component`` accepts whatever its parameters: its registration's and its class's (imports the
    factory); a weighted sum accepts what every part accepts. None: any number."""
    parts = getattr(component, "part_components", None)
    if parts is not None:
        return _intersect(declared_counts(part) for part in parts)
    registered = component.metadata.get(METADATA_KEY)
    return _intersect([None if registered is None else normalise(registered, _owner(component)),
                       _attribute(component.factory, _owner(component))])


def accepted_counts(component: Component, instance: Any = None) -> Counts | None:
    """The counts the objective built as ``instance`` accepts (its parameters may narrow the declared ones)."""
    parts = getattr(component, "part_components", None)
    modules = getattr(instance, "parts", None)
    if parts is not None:
        if modules is None or len(modules) != len(parts):
            return declared_counts(component)
        return _intersect(accepted_counts(part, module) for part, module in zip(parts, modules))
    if instance is None:
        return declared_counts(component)
    registered = component.metadata.get(METADATA_KEY)
    return _intersect([None if registered is None else normalise(registered, _owner(component)),
                       _attribute(instance, _owner(component))])


def describe_counts(counts: Counts | None) -> str:
    """``"3"``, ``"2 to 8"``, ``"2, 4"`` or ``"any number (2 or more)"``."""
    if counts is None:
        return "any number (2 or more)"
    if not counts:
        return "none"
    if len(counts) > 2 and counts == tuple(range(counts[0], counts[-1] + 1)):
        return f"{counts[0]} to {counts[-1]}"
    return ", ".join(map(str, counts))


def not_applicable_reason(component: Component, instance: Any, modalities: Sequence[str]) -> str | None:
    """Why the objective cannot train on a task with these modalities (its counts exclude their number), or None.

    When the built objective, not its declaration, rules the count out, its own ``check_modalities`` message is
    used where it has one: it usually says which parameter to set.
    """
    counts = accepted_counts(component, instance)
    if counts is None or len(modalities) in counts:
        return None
    names = ", ".join(modalities)
    declared = declared_counts(component)
    if instance is None or (declared is not None and len(modalities) not in declared):
        return f"it accepts {describe_counts(declared)} modalities and the task has {len(modalities)} ({names})"
    check = getattr(instance, "check_modalities", None)
    if callable(check):
        try:
            check(list(modalities))
        except (ValueError, LookupError) as exc:
            return str(exc).strip()
    return (f"with these parameters it accepts {describe_counts(counts)} modalities and the task has "
            f"{len(modalities)} ({names})")
