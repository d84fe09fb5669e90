"""Bad input: every case is one line on stderr, no traceback, exit status 2, before anything trains.

The message names what is wrong and what would be right (a suggestion for a misspelled name, the
expected type or range, the offending row or file). Tasks with broken data and broken plugins are
in-process plugins (``reliability_helpers``).
"""

from __future__ import annotations

import re

import pytest
from reliability_helpers import TINY, BadTasks, FaultyObjectives

from pmrl_bench import hookimpl
from pmrl_bench.cli import main
from pmrl_bench.errors import UsageError
from pmrl_bench.plugins import ENV_STRICT

RUN = ["run", *TINY, "--steps", "5", "--seeds", "1"]


def _bad(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("pmrl-bench: error: ")
    return err


class RaisesWhileRegistering:
    @hookimpl
    def register_objectives(self, register):
        raise ImportError("no module named 'missing_dependency'")


class RegistersInfonceAgain:
    @hookimpl
    def register_objectives(self, register):
        register("infonce", FaultyObjectives)


class RegistersAnEscapingName:
    @hookimpl
    def register_tasks(self, register):
        register("../../etc", BadTasks)


# (case id, argv after "run" defaults, what the one line must say)
CASES = [
    # unknown or misspelled names, with suggestions
    ("objective misspelled", ["--objectives", "infonse"], "unknown objective 'infonse' (did you mean 'infonce'?)"),
    ("task misspelled", ["--objectives", "infonce", "--tasks", "synthetc"],
     "unknown task 'synthetc' (did you mean 'synthetic'?)"),
    ("encoder misspelled", ["--objectives", "infonce", "--encoder", "m0=mpl"],
     "unknown encoder 'mpl' (did you mean 'mlp'?)"),
    ("parameter misspelled", ["--objectives", "pmrl", "--set", "objective.pmrl.tau=0.1"],
     "unknown parameter of objective 'pmrl': 'tau' (did you mean 'tau"),
    ("--set kind misspelled", ["--objectives", "pmrl", "--set", "objectiv.pmrl.tau1=0.1"],
     "kind must be one of objective, encoder, task"),
    ("--set component unknown", ["--objectives", "pmrl", "--set", "objective.pmrll.tau1=0.1"],
     "unknown objective 'pmrll' (did you mean 'pmrl'?)"),
    ("--set malformed", ["--objectives", "pmrl", "--set", "objective.pmrl.tau1"], "is not KIND.NAME.KEY=VALUE"),
    ("modality unknown", ["--objectives", "infonce", "--encoder", "m7=mlp"], "unknown modality in --encoder 'm7'"),
    ("--encoder malformed", ["--objectives", "infonce", "--encoder", "m0"], "is not MODALITY=NAME"),
    ("path traversal as a task", ["--objectives", "infonce", "--tasks", "../../etc"], "unknown task '../../etc'"),
    # bad --set values: type and range
    ("float expected", ["--objectives", "pmrl", "--set", "objective.pmrl.tau1=abc"], "tau1=abc: expected a number"),
    ("integer expected", ["--objectives", "infonce", "--set", "task.synthetic.n_train=12.5"], "expected an integer"),
    ("out of range (objective)", ["--objectives", "pmrl", "--set", "objective.pmrl.tau1=-1"], "must be > 0"),
    ("out of range (task)", ["--objectives", "infonce", "--set", "task.synthetic.noise=-0.5"], "noise must be >= 0"),
    # impossible budgets
    ("zero steps", ["--objectives", "infonce", "--steps", "0"], "--steps must be between 1 and 10000000, got 0"),
    ("batch of one", ["--objectives", "infonce", "--batch-size", "1"], "--batch-size must be >= 2"),
    ("batch larger than the data", ["--objectives", "infonce", "--batch-size", "4096"],
     "exceeds the 217 training instances"),  # 256 minus 15% for validation
    ("learning rate not positive", ["--objectives", "infonce", "--lr", "0"],
     "--lr must be a finite number > 0, got 0.0"),
    ("learning rate infinite", ["--objectives", "infonce", "--lr", "inf"], "--lr must be a finite number > 0"),
    ("no seeds", ["--objectives", "infonce", "--seeds", "0"], "--seeds must be >= 1"),
    ("zero dimensions", ["--objectives", "infonce", "--dim", "0"], "--dim must be between 1 and"),
    ("not a number", ["--objectives", "infonce", "--steps", "ten"], "invalid int value: 'ten'"),
    ("unknown device", ["--objectives", "infonce", "--device", "tpu"], "--device must be"),
    ("seeds beyond memory", ["--objectives", "infonce", "--seeds", "100000000"],
     "makes 100000000 runs; a sweep holds at most"),
    # encoder parameters are checked by building each chosen encoder while planning, not by failed runs
    ("encoder hidden zero", ["--objectives", "infonce", "--set", "encoder.mlp.hidden=0"],
     "hidden must be an integer >= 1, got 0 (modality 'm0')"),
    ("encoder dropout above one", ["--objectives", "infonce", "--set", "encoder.mlp.dropout=2"],
     "dropout must be a number in [0, 1)"),
    ("encoder dropout NaN", ["--objectives", "infonce", "--set", "encoder.mlp.dropout=nan"],
     "dropout=nan: expected a finite number"),
    # non-finite numbers would be stored as null, so the result could not say what ran
    ("objective parameter infinite", ["--objectives", "pmrl", "--set", "objective.pmrl.tau1=inf"],
     "tau1=inf: expected a finite number (objective 'pmrl' does not declare that tau1 takes inf or nan)"),
    ("objective parameter NaN", ["--objectives", "pmrl", "--set", "objective.pmrl.grad_guard=nan"],
     "grad_guard=nan: expected a finite number"),
    ("integer beyond 64 bits", ["--objectives", "infonce", "--set", "task.synthetic.seed=99999999999999999999"],
     "expected an integer within 64 bits"),
    ("leaderboard directory is a file", ["--objectives", "infonce", "--leaderboard", "README-file"],
     "leaderboard directory 'README-file' is not writable"),
    ("leaderboard name too long", ["--objectives", "infonce", "--leaderboard", "b" * 300],
     "is not writable: File name too long; pass --leaderboard DIR"),
]

# tasks whose data is broken, through an in-process task plugin
DATA_CASES = [
    ("mismatched lengths", "lengths", "modalities must have one row per instance, got lengths a=64, b=61"),
    ("NaN in a row", "nan", "modality 'a' has a NaN or infinite value in row 5"),
    ("wrong dimensions", "dims", "modality 'b' has rows of shape (9,), declared (8,)"),
    ("labels of the wrong length", "labels", "labels have shape (63,), expected (64,)"),
    ("a single modality", "one-modality", "has 1 modality; multimodal objectives need at least 2"),
    ("a loader that raises", "raise", "task 'bad' failed to load its data: RuntimeError: the loader has a bug"),
]


@pytest.mark.parametrize(("argv", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_command_line(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README-file").write_text("a file where --leaderboard wants a directory\n")
    argv = RUN + argv  # argparse keeps the last --tasks, so a case may name its own
    assert expected in _bad(argv, capsys)
    assert not (tmp_path / "results").exists()  # nothing ran, nothing was written


@pytest.mark.parametrize(("defect", "expected"), [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES])
def test_task_with_broken_data(defect, expected, fresh_manager, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fresh_manager.register_plugin(BadTasks(), name="bad-tasks")
    err = _bad(["run", "--objectives", "infonce", "--tasks", "bad", "--set", f"task.bad.defect={defect}",
                "--batch-size", "8", "--steps", "2", "--seeds", "1", "--device", "cpu", "--no-progress"], capsys)
    assert expected in err and "task 'bad'" in err


def test_missing_data_file(fresh_manager, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fresh_manager.register_plugin(BadTasks(), name="bad-tasks")
    missing = tmp_path / "no-such-features.npy"
    err = _bad(["run", "--objectives", "infonce", "--tasks", "bad", "--set", f"task.bad.path={missing}",
                "--batch-size", "8", "--device", "cpu", "--no-progress"], capsys)
    assert f"task 'bad': data file {missing} not found" in err


@pytest.mark.parametrize("where", ["under a file", "a file"])
def test_results_directory_not_writable(where, capsys, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory\n")
    results = blocker / "results" if where == "under a file" else blocker
    err = _bad([*RUN, "--objectives", "infonce", "--results", str(results)], capsys)
    assert f"results directory '{results}' is not writable" in err and "--results DIR" in err


def test_results_directory_without_write_permission(capsys, tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes through directory permissions")
    results = tmp_path / "results"
    results.mkdir(mode=0o555)
    err = _bad([*RUN, "--objectives", "infonce", "--results", str(results)], capsys)
    assert "is not writable: Permission denied" in err


def test_plugin_raising_while_registering_is_an_error_in_strict_mode(fresh_manager, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ENV_STRICT, "1")
    fresh_manager.register_plugin(RaisesWhileRegistering(), name="raising-plugin")
    err = _bad([*RUN, "--objectives", "infonce"], capsys)
    assert "plugin 'raising-plugin'" in err and "ImportError: no module named 'missing_dependency'" in err
    assert ENV_STRICT in err


def test_plugin_raising_while_registering_is_a_warning_by_default(fresh_manager, capsys, tmp_path, monkeypatch):
    """Decision: by default a broken plugin is skipped with a warning naming it, and everything else works."""
    monkeypatch.chdir(tmp_path)
    fresh_manager.register_plugin(RaisesWhileRegistering(), name="raising-plugin")
    assert main([*RUN, "--objectives", "infonce"]) == 0
    err = capsys.readouterr().err
    assert "warning: plugin 'raising-plugin' failed during register_objectives and was skipped" in err


def test_duplicate_registration_names_both_plugins(fresh_manager, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fresh_manager.register_plugin(RegistersInfonceAgain(), name="copycat")
    err = _bad([*RUN, "--objectives", "infonce"], capsys)
    assert "objective 'infonce' is registered twice" in err and "'copycat'" in err
    assert "pmrl_bench.builtins.objectives" in err


def test_plugin_name_that_would_escape_the_results_directory(fresh_manager, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fresh_manager.register_plugin(RegistersAnEscapingName(), name="escaper")
    err = _bad([*RUN, "--objectives", "infonce", "--tasks", "../../etc"], capsys)
    assert "registered an invalid task name '../../etc'" in err


def test_leaderboard_of_a_missing_directory(capsys, tmp_path):
    assert "does not exist" in _bad(["leaderboard", str(tmp_path / "nope")], capsys)


def test_the_table_has_at_least_twenty_cases():
    extra = 10  # the single tests above: missing file, 3 not-writable, 2 plugin modes, duplicate, escape, leaderboard
    assert len(CASES) + len(DATA_CASES) + extra >= 20 and len(CASES) >= 20


def test_a_name_given_twice_is_one_run(tmp_path, capsys):
    """Before, ``--objectives infonce,infonce --rerun`` trained the same run twice."""
    args = [*RUN, "--objectives", "infonce,infonce", "--tasks", "synthetic,synthetic", "--rerun",
            "--results", str(tmp_path / "results"), "--leaderboard", str(tmp_path / "boards")]
    assert main(args) == 0
    assert "1 runs: 1 ok, 0 diverged, 0 failed, 0 already done" in capsys.readouterr().out


class DeclaresNonFinite:
    @hookimpl
    def register_objectives(self, register):
        register("clipped", _clipped, non_finite=("clip",))
        register("floored", _floored)


def _clipped(clip: float = 1.0, scale: float = 1.0):
    return None


def _floored(floor: float = float("-inf")):
    return None


def test_non_finite_values_only_where_a_parameter_declares_them(fresh_manager):
    from pmrl_bench.params import coerce

    fresh_manager.register_plugin(DeclaresNonFinite(), name="declares")
    clipped, floored = (fresh_manager.registry.get("objective", n) for n in ("clipped", "floored"))
    assert coerce(clipped, "clip", "inf") == float("inf")  # declared at registration
    assert coerce(floored, "floor", "-inf") == float("-inf")  # its default is non-finite
    with pytest.raises(UsageError, match="scale=nan: expected a finite number"):
        coerce(clipped, "scale", "nan")


@pytest.mark.parametrize(("params", "message"), [
    ({"dropout": float("nan")}, "dropout must be a number in [0, 1), got nan"),
    ({"dropout": float("inf")}, "dropout must be a number in [0, 1)"),
    ({"hidden": 2.5}, "hidden must be an integer >= 1, got 2.5"),
    ({"layers": True}, "layers must be an integer >= 1, got True"),
])
def test_builtin_encoders_reject_nan_and_non_integers_from_the_python_api(params, message):
    from pmrl_bench.components import VECTOR, Modality
    from pmrl_bench.plugins import get_registry

    with pytest.raises(UsageError, match=re.escape(message)):
        get_registry().get("encoder", "mlp").create(modality=Modality("m", VECTOR, (4,)), dim=8, **params)
