"""The package's shape: imports run downward through named layers, no module imports itself back through others,
and no function is longer than a screen. Walks the source with ``ast``, so lazy imports inside functions count."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import pmrl_bench

PACKAGE = Path(pmrl_bench.__file__).parent
MAX_FUNCTION_LINES = 80

# Bottom to top. A module may import from its own layer or those below it, never from a layer above. The first
# dotted prefix of a module that appears here decides its layer (``runner.train`` is in ``runner``).
LAYERS: list[set[str]] = [
    {"_version", "errors", "fsutil", "components", "hookspecs", "splits", "device", "rounding", "console", "redact",
     "cards"},
    {"registry", "params", "modality_counts"},
    {"composite", "plugins", "results", "run_marks"},
    {"evaluation"},
    {"runner"},
    {"stability"},
    {"tracking", "tuning", "baselines"},
    {"leaderboard", "report"},
    {"analysis", "benchmark", "launch", "cli", "testing", "builtins", "__init__", "__main__"},
]


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)] = path
    return modules


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The package module an absolute import names (``pmrl_bench.runner.train.X`` -> ``runner.train``)."""
    if name == "pmrl_bench":
        return "__init__"
    name = name.removeprefix("pmrl_bench.")
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> Iterator[tuple[str, int]]:
    """``(imported module, line)`` for every import of a pmrl_bench module in ``module``'s source."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1] if package else []
                base = ".".join(["pmrl_bench", *[p for p in anchor if p], *([base] if base else [])])
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}".removeprefix("pmrl_bench.") in MODULES
                     else base for alias in node.names]
        for name in names:
            if name == "pmrl_bench" or name.startswith("pmrl_bench."):
                target = _resolve(name)
                if target is not None and target != module:
                    yield target, node.lineno


def _layer(module: str) -> int:
    head = module.split(".")[0]
    for index, layer in enumerate(LAYERS):
        if head in layer:
            return index
    raise AssertionError(f"module {module!r} is in no layer of tests/test_architecture.py: place it in one")


def test_every_module_has_a_layer():
    for module in MODULES:
        _layer(module)


def test_no_import_runs_up_the_layers():
    upward = [f"{module} (line {line}) imports {target}"
              for module in sorted(MODULES) for target, line in _imports(module)
              if _layer(target) > _layer(module)]
    assert upward == []


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    graph = {module: {target for target, _ in _imports(module)} for module in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_import_circles():
    assert _cycles() == []


def test_the_checks_see_a_circle_and_an_upward_import():
    """The walk itself works: the runner imports the training loop, which the CLI sits above."""
    assert ("runner.train", ) <= tuple(target for target, _ in _imports("runner.executor") if target == "runner.train")
    assert _layer("cli.training") > _layer("runner.sweep") > _layer("evaluation.retrieval")


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_function_is_longer_than_a_screen(path):
    long = [f"{node.name} (line {node.lineno}): {node.end_lineno - node.lineno + 1} lines"
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []
