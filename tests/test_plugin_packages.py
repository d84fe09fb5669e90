"""The plugin packages under plugins/: each is a complete, installable package, CI installs every one of them, and
the README's test command is the one CI runs."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p for p in (ROOT / "plugins").iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def _readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text()
    # The set-up-and-test command: one line from a fresh venv to the test run.
    commands = re.findall(r"^(python3 -m venv .*&& python -m pytest.*)$", readme, re.M)
    assert len(commands) == 1, f"the README should have exactly one set-up-and-test command, found {commands}"
    return commands[0]


def test_there_are_plugin_packages():
    assert {p.name for p in PACKAGES} >= {"pmrl-bench-symile", "pmrl-bench-template"}


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_each_package_is_complete_and_installed(package: Path):
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    entry_points = project.get("entry-points", {}).get("pmrl_bench", {})
    assert entry_points, f"{package.name}: no [project.entry-points.pmrl_bench] in its pyproject.toml"
    assert any(dep.startswith("pmrl-bench") for dep in project["dependencies"])
    assert (package / "README.md").is_file()
    assert list((package / "tests").glob("test_*.py")), f"{package.name} has no tests"
    try:
        dist = importlib.metadata.distribution(project["name"])
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{project['name']} is not installed; run the README's test command (pip install -e {package})")
    assert dist.version == project["version"]
    assert {ep.name for ep in dist.entry_points if ep.group == "pmrl_bench"} == set(entry_points)


def test_ci_runs_the_readme_test_command_which_installs_every_plugin():
    command = _readme_test_command()
    assert command in (ROOT / ".ci" / "run").read_text()
    assert "plugins/*/" in command  # a glob, so a new package under plugins/ is installed without editing CI
    assert "plugins" in (
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"])
