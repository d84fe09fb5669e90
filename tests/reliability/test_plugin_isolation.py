"""Plugins cannot break the host.

* What a plugin prints (at import, while registering, from a lazily imported factory module; through ``print``,
  ``sys.stdout`` or file descriptor 1) never reaches stdout under ``--json``: the output always parses.
* A registration that clashes (a name registered by two distributions, or an invalid name) no longer stops every
  command: ``list``, ``plugins`` and ``--help`` work and show the clash; a command that uses the name exits 2 naming
  both distributions; other commands go on with one warning line per clash; ``PMRL_BENCH_STRICT_PLUGINS=1`` makes
  every plugin problem exit 2.

Installed plugins are simulated by distributions (``*.dist-info`` with entry points) in a temporary directory on
``sys.path``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from reliability_helpers import text_results

from pmrl_bench import plugins
from pmrl_bench.cli import main
from pmrl_bench.plugins import ENV_LOAD_PLUGINS, ENV_STRICT

TINY_RUN = ["run", "--tasks", "synthetic", "--set", "task.synthetic.n_train=64", "--set", "task.synthetic.n_test=32",
            "--batch-size", "8", "--dim", "8", "--steps", "1", "--seeds", "1", "--device", "cpu", "--no-progress"]
HEADER = "from pmrl_bench import hookimpl\n\n\ndef factory(scale: float = 1.0):\n    return None\n\n\n"


def _install(tmp_path: Path, monkeypatch, sources: dict[str, str]) -> dict[str, str]:
    """Distributions ``fake-<name>`` (version 0.1) whose entry point ``<name>`` imports a module with the source;
    returns their module names. Only these external plugins are loaded."""
    site = tmp_path / "site"
    modules = {}
    for name, source in sources.items():
        module = f"fake_{name.replace('-', '_')}_{abs(hash(str(tmp_path))) % 10**8}"
        info = site / f"fake_{name.replace('-', '_')}-0.1.dist-info"
        info.mkdir(parents=True)
        (site / f"{module}.py").write_text(source.replace("MODULE", module))
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fake-{name}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[pmrl_bench]\n{name} = {module}\n")
        monkeypatch.delitem(sys.modules, module, raising=False)
        modules[name] = module
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv(ENV_LOAD_PLUGINS, ",".join(sources))
    return modules


def _lines(err: str) -> list[str]:
    assert "Traceback" not in err, err
    # the tiny task's warning about its small test split is not the point here
    return [line for line in err.strip().splitlines() if "test instances" not in line]


# -- what a plugin prints ---------------------------------------------------------------------------------------------

PRINTERS = {
    "print at import": "print('PLUGIN SAYS HELLO')\n",
    "sys.stdout at import": "import sys\nsys.stdout.write('{PLUGIN SAYS HELLO')\n",
    "fd 1 at import": "import os\nos.write(1, b'PLUGIN SAYS HELLO\\n')\n",
    "print while registering": "@hookimpl\ndef register_objectives(register):\n    print('PLUGIN SAYS HELLO')\n"
                               "    register('printer', factory)\n",
    "print while registering reporters": "@hookimpl\ndef register_reporters(register):\n"
                                         "    print('PLUGIN SAYS HELLO')\n",
    "lazy factory module": "@hookimpl\ndef register_objectives(register):\n"
                           "    register('lazy-printer', 'MODULE_lazy:factory')\n",
}


@pytest.fixture
def results_dir(tmp_path) -> Path:
    return text_results(tmp_path / "results", "plain")


@pytest.mark.parametrize("source", PRINTERS.values(), ids=PRINTERS.keys())
def test_what_a_plugin_prints_never_reaches_json_stdout(source, tmp_path, monkeypatch, capfd, results_dir):
    capfd.readouterr()
    modules = _install(tmp_path, monkeypatch, {"printer": HEADER + source})
    (tmp_path / "site" / f"{modules['printer']}_lazy.py").write_text(
        "print('PLUGIN SAYS HELLO')\n\n\ndef factory(scale: float = 1.0):\n    return None\n")
    for argv in (["list", "--json"], ["list", "objectives", "--params", "--json"], ["plugins", "--json"],
                 ["show", "--results", str(results_dir), "--json"]):
        assert main(argv) == 0, argv
        captured = capfd.readouterr()
        json.loads(captured.out)  # parses: the JSON document alone
        assert "PLUGIN SAYS HELLO" not in captured.out
        assert "Traceback" not in captured.err
    # the print happened (once per process, at first load or first use): it went to stderr, not nowhere
    plugins.MANAGER = plugins.PluginManager()
    monkeypatch.delitem(sys.modules, modules["printer"], raising=False)
    monkeypatch.delitem(sys.modules, f"{modules['printer']}_lazy", raising=False)
    assert main(["list", "--params", "--json"]) == 0
    captured = capfd.readouterr()
    json.loads(captured.out)
    if "reporters" not in source:
        assert "PLUGIN SAYS HELLO" in captured.err
    assert main(["plugins"]) == 0  # without --json too, the plugin's output is on stderr, pmrl-bench's on stdout
    assert "PLUGIN SAYS HELLO" not in capfd.readouterr().out


LOUD = HEADER + """import os

import torch

from pmrl_bench.components import ObjectiveOutput


class Loud(torch.nn.Module):
    def forward(self, embeddings):
        print("TRAINING NOISE")
        os.write(1, b"RAW NOISE\\n")
        first, *others = embeddings.values()
        loss = sum(1 - (first * z).sum(-1).mean() for z in others)
        return ObjectiveOutput(loss=loss, terms={"align": loss.detach()})


@hookimpl
def register_objectives(register):
    register("loud", Loud)
"""


@pytest.mark.slow
def test_run_json_parses_whatever_an_objective_prints_while_training(tmp_path, monkeypatch, capfd):
    _install(tmp_path, monkeypatch, {"loud": LOUD})
    argv = [*TINY_RUN, "--objectives", "loud", "--results", str(tmp_path / "r"), "--leaderboard", str(tmp_path / "b"),
            "--json"]
    code = main(argv)
    captured = capfd.readouterr()
    document = json.loads(captured.out)  # the run's JSON alone, though the objective printed at every step
    assert code == 0 and document["runs"]["ok"] == 1, captured.err
    assert "TRAINING NOISE" in captured.err and "RAW NOISE" in captured.err


@pytest.mark.slow
def test_a_separate_process_prints_only_json_on_stdout(tmp_path, monkeypatch):
    """The real thing: a new interpreter, a plugin writing to Python's stdout and to file descriptor 1."""
    _install(tmp_path, monkeypatch, {"noisy": HEADER + PRINTERS["fd 1 at import"] + PRINTERS["print at import"]})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), *sys.path]),
           ENV_LOAD_PLUGINS: "noisy"}
    for argv in (["list", "--json"], ["plugins", "--json"]):
        done = subprocess.run([sys.executable, "-m", "pmrl_bench", *argv], capture_output=True, text=True, env=env,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        json.loads(done.stdout)
        assert done.stderr.count("PLUGIN SAYS HELLO") == 2


# -- registrations that clash ------------------------------------------------------------------------------------------

@dataclass
class Clash:
    sources: dict[str, str]
    uses: list[str]  # a command that uses a clashing name: exit 2
    names: list[str]  # what its one line must name (the distributions)
    other: list[str]  # a command that does not: exit 0, one warning line per clash
    clashes: int = 1
    shown: list[str] = field(default_factory=list)  # in list/plugins/--help


def _registers(hook: str, *calls: str) -> str:
    return HEADER + f"@hookimpl\ndef {hook}(register):\n" + "".join(f"    register({c})\n" for c in calls)


CLASHES = {
    "duplicate of a built-in objective": Clash(
        {"copycat": _registers("register_objectives", "'infonce', factory")},
        [*TINY_RUN, "--objectives", "infonce"], ["distribution pmrl-bench", "distribution fake-copycat"],
        [*TINY_RUN, "--objectives", "pmrl"], shown=["infonce"]),
    "two distributions, one task": Clash(
        {"twin-a": _registers("register_tasks", "'twin', factory"),
         "twin-b": _registers("register_tasks", "'twin', factory")},
        [*TINY_RUN, "--objectives", "infonce", "--tasks", "twin"],
        ["distribution fake-twin-a", "distribution fake-twin-b"], [*TINY_RUN, "--objectives", "infonce"],
        shown=["twin"]),
    "invalid names": Clash(
        {"invalid": _registers("register_tasks", "'../../etc', factory", "'x' * 1000, factory")
         + "\n\n" + _registers("register_objectives", "'\\x1b[2Jbad', factory").removeprefix(HEADER)},
        [*TINY_RUN, "--objectives", "infonce", "--tasks", "../../etc"], ["distribution fake-invalid", "'../../etc'"],
        [*TINY_RUN, "--objectives", "infonce"], clashes=3, shown=["../../etc", "\\x1b[2Jbad"]),
    "the default encoder": Clash(
        {"encoders": _registers("register_encoders", "'mlp', factory, default_for=('vector',)")},
        [*TINY_RUN, "--objectives", "infonce", "--encoder", "m0=mlp"],
        ["distribution pmrl-bench", "distribution fake-encoders"], ["list", "encoders"], shown=["mlp"]),
    "a built-in reporter": Clash(
        {"board": _registers("register_reporters", "'tensorboard', factory")},
        [*TINY_RUN, "--objectives", "infonce", "--log", "tensorboard"],
        ["distribution pmrl-bench", "distribution fake-board"], [*TINY_RUN, "--objectives", "infonce"],
        shown=["tensorboard"]),
}


@pytest.mark.parametrize("case", CLASHES.values(), ids=CLASHES.keys())
def test_a_clash_fails_only_the_commands_that_use_the_name(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _install(tmp_path, monkeypatch, case.sources)
    assert main(case.uses) == 2
    err = _lines(capsys.readouterr().err)
    assert err[-1].startswith("pmrl-bench: error: "), err
    assert all(name in err[-1] for name in case.names), err[-1]
    assert len(err) <= 1 + case.clashes  # the error, after at most one warning per clash
    code = main([*case.other, "--results", "r", "--leaderboard", "b"] if case.other[0] == "run" else case.other)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    warnings = _lines(captured.err)
    assert all(line.startswith("pmrl-bench: warning: ") for line in warnings), warnings
    assert len(warnings) <= case.clashes
    if case.other[0] == "run":
        assert "1 runs: 1 ok" in captured.out


@pytest.mark.parametrize("case", CLASHES.values(), ids=CLASHES.keys())
def test_list_plugins_and_help_work_and_show_the_clash(case, tmp_path, monkeypatch, capsys):
    _install(tmp_path, monkeypatch, case.sources)
    for argv in (["list"], ["plugins"]):
        assert main(argv) == 0, argv
        captured = capsys.readouterr()
        shown = captured.out + captured.err
        assert all(name in shown for name in case.shown), (argv, shown)
        assert "unusable" in captured.out or argv == ["list"] and "reporter 'tensorboard'" in captured.err
    assert main(["plugins", "--json"]) == 0
    failures = json.loads(capsys.readouterr().out)["failures"]
    assert sum(f["stage"] == "clash" for f in failures) == case.clashes
    for argv in (["--help"], ["run", "--help"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 0
        help_text = capsys.readouterr().out
        assert "plugin problems" in help_text and all(name in help_text for name in case.shown), help_text[-600:]


@pytest.mark.parametrize("case", CLASHES.values(), ids=CLASHES.keys())
def test_strict_mode_makes_every_clash_exit_2(case, tmp_path, monkeypatch, capsys):
    _install(tmp_path, monkeypatch, case.sources)
    monkeypatch.setenv(ENV_STRICT, "1")
    argv = ["plugins"] if "reporter" in case.names[0] or "board" in case.sources else ["list"]
    assert main(argv) == 2
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and ENV_STRICT in err[0] and "registered" in err[0], err
