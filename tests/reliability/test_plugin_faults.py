"""Plugins that misbehave while loading: the fault is named, attributed to the plugin, and never turns a command
into a silent success. Installed plugins are simulated by a distribution (``*.dist-info`` with entry points) in a
temporary directory on ``sys.path``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pmrl_bench import hookimpl, plugins
from pmrl_bench.cli import main
from pmrl_bench.plugins import ENV_LOAD_PLUGINS, ENV_STRICT

TINY_RUN = ["run", "--tasks", "synthetic", "--set", "task.synthetic.n_train=64", "--set", "task.synthetic.n_test=32",
            "--batch-size", "8", "--dim", "8", "--steps", "1", "--seeds", "1", "--device", "cpu", "--no-progress"]


def _install(tmp_path: Path, monkeypatch, entry_point: str, source: str) -> str:
    """An installed distribution ``fake-<entry_point>`` whose entry point imports a module with ``source``."""
    module = f"fake_{entry_point}_{abs(hash(str(tmp_path))) % 10**8}"
    site = tmp_path / "site"
    info = site / f"fake_{entry_point}-0.1.dist-info"
    info.mkdir(parents=True)
    (site / f"{module}.py").write_text(source)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fake-{entry_point}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[pmrl_bench]\n{entry_point} = {module}\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv(ENV_LOAD_PLUGINS, entry_point)
    monkeypatch.delitem(sys.modules, module, raising=False)
    return module


def _strict_from_now_on(monkeypatch) -> None:
    """Like starting a new process with the variable set: plugins are loaded once per process."""
    monkeypatch.setenv(ENV_STRICT, "1")
    monkeypatch.setattr(plugins, "MANAGER", plugins.PluginManager())


def _stderr_lines(capsys) -> tuple[str, list[str]]:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err, captured.err
    # the tiny tasks of these tests also get the warning about their small test split; it is not the point here
    return captured.out, [line for line in captured.err.strip().splitlines() if "test instances" not in line]


def test_a_plugin_that_exits_at_import_is_skipped_not_obeyed(tmp_path, monkeypatch, capsys):
    """Before, ``sys.exit(0)`` at import ended every command with status 0, having done nothing."""
    _install(tmp_path, monkeypatch, "exiter", "import sys\nsys.exit(0)\n")
    assert main(["list", "objectives", "--json"]) == 0
    out, err = _stderr_lines(capsys)
    assert "infonce" in {e["name"] for e in json.loads(out)}  # the command did its work
    assert len(err) == 1 and "plugin 'exiter' (distribution fake-exiter) failed during load and was skipped" in err[0]
    assert "SystemExit(0)" in err[0]
    assert main([*TINY_RUN, "--objectives", "no-such-objective"]) == 2  # bad input still fails as it should
    assert "unknown objective 'no-such-objective'" in _stderr_lines(capsys)[1][-1]
    _strict_from_now_on(monkeypatch)
    assert main(["list"]) == 2
    _, err = _stderr_lines(capsys)
    assert len(err) == 1 and "plugin 'exiter'" in err[0] and ENV_STRICT in err[0]


class ExitsWhileRegistering:
    @hookimpl
    def register_objectives(self, register):
        raise SystemExit(0)


def test_a_plugin_that_exits_while_registering_is_skipped(fresh_manager, capsys):
    fresh_manager.register_plugin(ExitsWhileRegistering(), name="exits-registering")
    assert main(["list", "objectives"]) == 0
    out, err = _stderr_lines(capsys)
    assert "infonce" in out
    assert err == ["pmrl-bench: warning: plugin 'exits-registering' failed during register_objectives and was "
                   "skipped: SystemExit(0): a plugin must raise an exception, not exit the process"]


def test_keyboard_interrupt_at_import_is_attributed_to_the_plugin(tmp_path, monkeypatch, capsys):
    _install(tmp_path, monkeypatch, "interrupter", "raise KeyboardInterrupt\n")
    assert main(["plugins"]) == 130
    _, err = _stderr_lines(capsys)
    assert len(err) == 1
    assert "interrupted during the import of plugin 'interrupter' (distribution fake-interrupter)" in err[0]
    assert ENV_LOAD_PLUGINS in err[0] and "resumes the sweep" not in err[0]


class LazyAndBroken:
    @hookimpl
    def register_objectives(self, register):
        register("lazy-broken", "pmrl_bench_no_such_module:Objective")


@pytest.mark.slow
def test_a_broken_lazy_factory_is_left_out_of_the_default_sweep(fresh_manager, tmp_path, capsys):
    """Before, ``run`` without --objectives stopped at the broken plugin, running none of the others."""
    fresh_manager.register_plugin(LazyAndBroken(), name="lazy-plugin")
    args = [*TINY_RUN, "--results", str(tmp_path / "results"), "--leaderboard", str(tmp_path / "boards")]
    assert main(args) == 0
    out, err = _stderr_lines(capsys)
    assert len(err) == 1 and "objective 'lazy-broken' of plugin 'lazy-plugin' cannot be imported" in err[0]
    assert "left out of this sweep (name it in --objectives to make it an error)" in err[0]
    builtins = len(fresh_manager.registry.names("objective")) - 1
    assert f"{builtins} runs: {builtins} ok" in out
    assert main([*args, "--objectives", "lazy-broken"]) == 2  # named explicitly, it is an error
    _, err = _stderr_lines(capsys)
    assert len(err) == 1 and "cannot be imported from 'pmrl_bench_no_such_module:Objective'" in err[0]


def test_load_plugins_naming_nothing_installed_says_so(monkeypatch, capsys):
    monkeypatch.setenv(ENV_LOAD_PLUGINS, "pmrl-bench-symlie")
    assert main(["plugins"]) == 0
    _, err = _stderr_lines(capsys)
    assert len(err) == 1
    assert err[0].startswith(f"pmrl-bench: warning: {ENV_LOAD_PLUGINS} names 'pmrl-bench-symlie': no installed "
                             "plugin has that entry-point or distribution name (installed: ")
    _strict_from_now_on(monkeypatch)
    assert main(["plugins"]) == 2
    _, err = _stderr_lines(capsys)
    assert len(err) == 1 and "pmrl-bench-symlie" in err[0]


@pytest.mark.parametrize("value", ["", " , "])
def test_load_plugins_set_to_nothing_loads_none_quietly(value, monkeypatch, capsys):
    monkeypatch.setenv(ENV_LOAD_PLUGINS, value)
    assert main(["plugins"]) == 0
    assert _stderr_lines(capsys)[1] == []
