"""What a component's parameters are: name, type, default and a one-line meaning from the factory's docstring.

The meaning comes from the docstring's parameter section in any style docstring_parser reads: Google
(``Args:``), numpy (``Parameters`` with dashes) or reST (``:param x:``). A class factory's own docstring is read
first, then its ``__init__``'s. A parameter no docstring describes is shown as :data:`UNDOCUMENTED`.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import docstring_parser
from tabulate import tabulate

from pmrl_bench.console import escape, shorten
from pmrl_bench.errors import PmrlBenchError
from pmrl_bench.registry import Component

UNDOCUMENTED = "(undocumented)"
REQUIRED = "(required)"
CELL_LIMIT = 300


@dataclass(frozen=True)
class ParameterInfo:
    """One user-settable parameter, as ``pmrl-bench list --params`` shows it."""

    name: str
    type: str
    default: Any  # the default as a JSON value; None also when there is none (then ``required``)
    required: bool
    meaning: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def docstring_meanings(factory: Callable[..., Any]) -> dict[str, str]:
    """``{parameter: meaning}`` from the parameter sections of the factory's docstrings (class, then ``__init__``)."""
    docs = [inspect.getdoc(factory)]
    if inspect.isclass(factory):
        docs.append(inspect.getdoc(factory.__init__))
    meanings: dict[str, str] = {}
    for doc in docs:
        if not doc:
            continue
        try:
            parsed = docstring_parser.parse(doc)
        except docstring_parser.ParseError:  # a malformed section documents nothing; the listing still works
            continue
        for param in parsed.params:
            meaning = _one_line(param.description)
            if meaning:
                meanings.setdefault(param.arg_name.strip("*"), meaning)
    return meanings


def _type_name(parameter: inspect.Parameter) -> str:
    annotation = parameter.annotation
    if annotation is not inspect.Parameter.empty:
        # Under ``from __future__ import annotations`` the annotation is already the source text.
        return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    if parameter.default not in (inspect.Parameter.empty, None):
        return type(parameter.default).__name__
    return "any"


def describe_parameters(component: Component) -> list[ParameterInfo]:
    """Every parameter of ``component`` in signature order (may raise ``PluginError`` if its factory cannot load)."""
    parameters = component.parameters()
    meanings = docstring_meanings(component.factory) if parameters else {}
    out = []
    for name, parameter in parameters.items():
        required = parameter.default is inspect.Parameter.empty
        out.append(ParameterInfo(name, _type_name(parameter), None if required else parameter.default, required,
                                 meanings.get(name, UNDOCUMENTED)))
    return out


def try_describe(component: Component) -> tuple[list[ParameterInfo], str | None]:
    """:func:`describe_parameters`, or no parameters and why, for a factory that cannot be imported."""
    try:
        return describe_parameters(component), None
    except PmrlBenchError as exc:
        return [], str(exc)
    except (Exception, SystemExit) as exc:  # a plugin module that raises at import must not take 'list' down
        return [], f"{type(exc).__name__}: {exc}"


def _shown_default(info: ParameterInfo) -> str:
    if info.required:
        return REQUIRED
    try:
        return json.dumps(info.default)
    except (TypeError, ValueError):
        return repr(info.default)


def parameter_table(infos: Sequence[ParameterInfo], indent: str = "    ") -> str:
    """The parameters as an aligned plain-text table, each line indented by ``indent``."""
    if not infos:
        return f"{indent}(no parameters)"
    # docstrings and defaults are plugin text: escaped, and cut, so that no cell can drive or flood the terminal
    rows = [[escape(shorten(str(cell), CELL_LIMIT)) for cell in (i.name, i.type, _shown_default(i), i.meaning)]
            for i in infos]
    table = tabulate(rows, headers=["parameter", "type", "default", "meaning"], tablefmt="plain",
                     disable_numparse=True)
    return "\n".join(indent + line.rstrip() for line in table.splitlines())
