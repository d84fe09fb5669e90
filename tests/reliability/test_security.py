"""Security: no pickle of outside data, weights-only checkpoint loading, no shell strings, names never
escape the results directory, and the README says plainly what a plugin is."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pmrl_bench.errors import UsageError
from pmrl_bench.results import ResultStore

REPO = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for root in ("pmrl_bench", "plugins") for p in (REPO / root).rglob("*.py")
                 if "/build/" not in str(p))
PICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "joblib", "shelve", "marshal", "cloudpickle"}


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(func: ast.expr) -> str:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    # a method of a computed value (``model().eval()``) is not the builtin: mark its base as unknown
    parts.append(func.id if isinstance(func, ast.Name) else "<expr>")
    return ".".join(reversed(parts))


def _keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _findings(path: Path, root: Path = REPO) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    where = path.relative_to(root)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"{where}:{node.lineno}: imports {a.name}" for a in node.names
                      if a.name.split(".")[0] in PICKLING_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLING_MODULES:
            found.append(f"{where}:{node.lineno}: imports from {node.module}")
    for call in _calls(tree):
        name = _name(call.func)
        weights_only = _keyword(call, "weights_only")
        if name == "torch.load":
            if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                found.append(f"{where}:{call.lineno}: torch.load without weights_only=True")
        pickle_kw = _keyword(call, "allow_pickle")
        if isinstance(pickle_kw, ast.Constant) and pickle_kw.value is True:
            found.append(f"{where}:{call.lineno}: allow_pickle=True")
        shell = _keyword(call, "shell")
        if isinstance(shell, ast.Constant) and shell.value is True:
            found.append(f"{where}:{call.lineno}: shell=True")
        if name in {"os.system", "os.popen", "eval", "exec", "pd.read_pickle", "pandas.read_pickle", "torch.jit.load"}:
            found.append(f"{where}:{call.lineno}: {name}()")
    return found


def test_sources_were_found():
    assert len(SOURCES) > 20 and any(p.name == "store.py" for p in SOURCES)


def test_no_pickle_no_unsafe_torch_load_no_shell_strings():
    findings = [f for path in SOURCES for f in _findings(path)]
    assert findings == [], "\n".join(findings)


def test_the_scanner_catches_what_it_looks_for(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import pickle\nimport os, torch, subprocess, numpy as np\n"
                     "torch.load('x')\ntorch.load('x', weights_only=False)\ntorch.load('x', weights_only=True)\n"
                     "np.load('x', allow_pickle=True)\nsubprocess.run('ls', shell=True)\nos.system('ls')\n"
                     "eval('1')\nmodel().eval()\n")
    findings = _findings(probe, tmp_path)
    assert [f.split(": ", 1)[1] for f in findings] == [
        "imports pickle", "torch.load without weights_only=True", "torch.load without weights_only=True",
        "allow_pickle=True", "shell=True", "os.system()", "eval()",
    ], findings


@pytest.mark.parametrize(
    ("task", "objective"),
    [("../etc", "x"), ("x", "../../tmp"), ("a/b", "x"), ("x", "/abs"), (".hidden", "x"), ("", "x"),
     ("x", "a" * 65), ("x", "..")],
)
def test_names_never_escape_the_results_directory(task, objective, tmp_path):
    with pytest.raises(UsageError, match="cannot be used as a results path"):
        ResultStore(tmp_path).path_for(task, objective, "abc123", 0)


@pytest.mark.parametrize("seed", [-1, True, 1.5])
def test_seeds_are_non_negative_integers_in_paths(seed, tmp_path):
    with pytest.raises(UsageError):
        ResultStore(tmp_path).path_for("synthetic", "pmrl", "abc123", seed)


def test_readme_says_a_plugin_is_code_with_your_rights():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "A plugin is code that runs with your rights" in readme
