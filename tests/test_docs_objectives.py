"""docs/objectives.md stays in step with the code: every registered objective it documents lists exactly the
parameters the objective takes, with the defaults the objective really uses."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from pmrl_bench import plugins

PAGE = Path(__file__).resolve().parent.parent / "docs" / "objectives.md"
# The plugin documented on the page beside the built-ins (installed with the test setup).
DOCUMENTED_PLUGINS = "symile"
# A default cell that names no value: the runner or the task supplies it.
SUPPLIED = ("the task's first modality", "supplied by the runner")


def parameter_tables(page: str) -> dict[str, dict[str, str]]:
    """``{objective: {parameter: default cell}}`` from the "| parameter | default | source |" table of each
    objective's section (a heading ``## `name` ...``)."""
    tables: dict[str, dict[str, str]] = {}
    for section in re.split(r"^## ", page, flags=re.MULTILINE)[1:]:
        heading = re.match(r"`([\w+.*-]+)`", section)
        if not heading or "| parameter | default | source |" not in section:
            continue
        rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section, flags=re.MULTILINE)
        tables[heading.group(1)] = {name: cell.strip() for name, cell in rows}
    return tables


def documented_value(cell: str) -> Any:
    """The default a cell states: ``true``/``false``, a number, a quoted string, or None when supplied elsewhere."""
    text = cell.strip("`")
    if any(cell.startswith(phrase) for phrase in SUPPLIED):
        return None
    if text in ("true", "false"):
        return text == "true"
    try:
        return float(text)
    except ValueError:
        return text


def same(documented: Any, actual: Any) -> bool:
    if isinstance(actual, bool) or isinstance(documented, bool) or actual is None or documented is None:
        return documented == actual
    if isinstance(actual, (int, float)) and isinstance(documented, float):
        return math.isclose(documented, float(actual), rel_tol=1e-12)
    return documented == actual


TABLES = parameter_tables(PAGE.read_text(encoding="utf-8"))


def test_the_page_documents_the_built_in_objectives():
    assert {"pmrl", "pmrl-intra", "volume", "infonce", "anchor", "gram"} <= set(TABLES)


@pytest.mark.parametrize("name", sorted(TABLES))
def test_documented_parameters_and_defaults_match_the_objective(name, monkeypatch):
    monkeypatch.setenv(plugins.ENV_LOAD_PLUGINS, DOCUMENTED_PLUGINS)
    registry = plugins.PluginManager().registry
    if name not in registry.names("objective"):
        pytest.skip(f"{name} is not installed here")
    component = registry.get("objective", name)
    actual = component.defaults()
    documented = TABLES[name]
    supplied = {p for p, cell in documented.items() if any(cell.startswith(s) for s in SUPPLIED)}
    assert set(actual) - set(documented) == set(), f"{name}: parameters missing from docs/objectives.md"
    assert set(documented) - set(actual) - supplied == set(), f"{name}: documented parameters it does not take"
    wrong = {
        p: (cell, actual[p])
        for p, cell in documented.items()
        if p in actual and not same(documented_value(cell), actual[p])
    }
    assert not wrong, f"{name}: documented default != actual default: {wrong}"


@pytest.mark.parametrize(
    "cell, value",
    [("0.05", 0.05), ("false", False), ("`mean`", "mean"), ("`float64`", "float64"), ("0", 0.0),
     ("the task's first modality", None), ("n", "n")],
)
def test_cells_read_as_the_values_they_state(cell, value):
    assert documented_value(cell) == value
