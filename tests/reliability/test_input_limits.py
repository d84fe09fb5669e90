"""Inputs are checked where they enter, with limits: one line and exit status 2, before anything trains.

* checkpoints: non-finite weights and integer, boolean or complex tensors where the encoders hold floats;
* tuned-parameter files: the best trial's values pass the same type and range checks as the command line;
* every count has an upper bound (steps, init steps, trials, threads, jobs, seeds, dimensions, layers);
* an encoder, objective or embedding size that cannot fit in memory is refused with the estimate;
* the leaderboard directory is checked by creating its lock directory, not by reading permission bits.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from reliability_helpers import TINY, one_error_line

from pmrl_bench.cli import main
from pmrl_bench.results import ResultStore

RUN = ["run", *TINY, "--steps", "3", "--seeds", "1"]


# -- checkpoints ---------------------------------------------------------------------------------------------------

def _encoder_layout() -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """The keys, shapes and dtypes of the encoders of RUN's task."""
    from pmrl_bench.params import parse_set_options
    from pmrl_bench.plugins import get_registry
    from pmrl_bench.runner import checkpoints
    from pmrl_bench.runner.spec import Budget
    from pmrl_bench.runner.sweep_plan import SweepConfig, plan_sweep

    registry = get_registry()
    config = SweepConfig(objectives=["infonce"], tasks=["synthetic"], seeds=1, budget=Budget(steps=3, batch_size=32),
                         overrides=parse_set_options(["task.synthetic.n_train=256", "task.synthetic.n_test=128"]),
                         device="cpu", progress=False)
    plan = plan_sweep(config, registry)
    return checkpoints.encoder_layout(registry, plan.data["synthetic"], plan.specs[0].encoders, 64)


def _state(damage=None) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    state = {key: (0.05 * torch.randn(shape, generator=generator)).to(dtype)
             for key, (shape, dtype) in _encoder_layout().items()}
    if damage is not None:
        key = sorted(k for k, v in state.items() if v.is_floating_point() and v.dim() == 2)[0]
        state[key] = damage(state[key])
    return state


def _poke(value: float):
    def damage(tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        tensor.view(-1)[tensor.numel() // 2] = value
        return tensor
    return damage


CHECKPOINTS = [
    ("one NaN", _poke(math.nan), "1 non-finite value"),
    ("one +inf", _poke(math.inf), "non-finite"),
    ("one -inf", _poke(-math.inf), "non-finite"),
    ("int64 weights", lambda t: t.round().to(torch.int64), "is int64"),
    ("int32 weights", lambda t: (t * 100).to(torch.int32), "is int32"),
    ("boolean weights", lambda t: t > 0, "is bool"),
    ("complex weights", lambda t: t.to(torch.complex64), "is complex64"),
]


@pytest.mark.parametrize(("case", "damage", "says"), CHECKPOINTS, ids=[c[0] for c in CHECKPOINTS])
def test_a_checkpoint_that_would_train_nonsense_is_refused(case, damage, says, tmp_path, capsys, no_training):
    from safetensors.torch import save_file

    path = tmp_path / "start.safetensors"
    save_file(_state(damage), str(path))
    results = tmp_path / "results"
    err = one_error_line(capsys, main([*RUN, "--objectives", "infonce", "--init-checkpoint", str(path),
                                  "--results", str(results), "--leaderboard", str(tmp_path / "boards")]))
    assert says in err and str(path) in err, err
    assert not results.exists() or ResultStore(results).scan() == ([], [])


def test_a_finite_floating_checkpoint_trains(tmp_path, capsys):
    """The control: float64 weights are floating point and finite, and are accepted."""
    from safetensors.torch import save_file

    path = tmp_path / "start.safetensors"
    save_file({k: v.double() for k, v in _state().items()}, str(path))
    results = tmp_path / "results"
    assert main([*RUN, "--objectives", "infonce", "--init-checkpoint", str(path), "--results", str(results),
                 "--leaderboard", str(tmp_path / "boards")]) == 0
    [result] = ResultStore(results).scan()[0]
    assert result.status == "ok" and result.protocol.startswith("checkpoint:")


# -- tuned-parameter files -----------------------------------------------------------------------------------------

TUNE = ["tune", *TINY, "--steps", "3", "--dim", "8", "--trials", "2", "--objectives", "infonce"]
_TUNED: dict[str, dict] = {}


@pytest.fixture
def tuned_file(tmp_path) -> tuple[Path, dict]:
    """A tuned-parameter file of a finished study (tuned once per module), as a path and its JSON."""
    if "record" not in _TUNED:
        root = tmp_path / "tuned-once"
        assert main([*TUNE, "--results", str(root)]) == 0
        [path] = (root / "_tuning").rglob("*.json")
        _TUNED["record"] = json.loads(path.read_text())
    return tmp_path / "tuned.json", json.loads(json.dumps(_TUNED["record"]))


def _set(record: dict, part: str, key: str, value) -> None:
    record["best"]["params"].setdefault(part, {})[key] = value


TUNED_VALUES = [
    ("a number as text", lambda r: _set(r, "objective", "temperature", "warm"), "expected a number"),
    ("out of range", lambda r: _set(r, "objective", "temperature", -0.5), "temperature"),
    ("infinite", lambda r: _set(r, "objective", "temperature", math.inf), "finite"),
    ("a boolean for a number", lambda r: _set(r, "objective", "label_smoothing", True), "expected a number"),
    ("unknown parameter", lambda r: _set(r, "objective", "temprature", 0.1), "did you mean 'temperature'"),
    ("objective not an object", lambda r: r["best"]["params"].update(objective=[0.1]), "must be an object"),
    ("learning rate zero", lambda r: _set(r, "budget", "lr", 0.0), "--lr must be a finite number > 0"),
    ("learning rate infinite", lambda r: _set(r, "budget", "lr", math.inf), "--lr must be a finite number > 0"),
    ("learning rate as text", lambda r: _set(r, "budget", "lr", "fast"), "expected a number"),
    ("negative weight decay", lambda r: _set(r, "budget", "weight_decay", -1.0), "weight decay must be >= 0"),
    ("a budget key tune never searches", lambda r: _set(r, "budget", "steps", 10 ** 12), "not searched by tune"),
    ("an extra part", lambda r: r["best"]["params"].update(encoder={"hidden": 10 ** 9}), "unexpected part"),
    ("a failed best trial", lambda r: r["best"].update(status="failed"), "no successful trial"),
]


@pytest.mark.parametrize(("case", "edit", "says"), TUNED_VALUES, ids=[c[0] for c in TUNED_VALUES])
def test_values_of_a_tuned_parameter_file_pass_the_command_line_checks(case, edit, says, tuned_file, tmp_path,
                                                                      capsys, no_training):
    path, record = tuned_file
    edit(record)
    path.write_text(json.dumps(record))
    err = one_error_line(capsys, main([*RUN, "--objectives", "infonce", "--steps", "3", "--dim", "8", "--params-from",
                                  str(path), "--results", str(tmp_path / "r"), "--leaderboard", str(tmp_path / "b")]))
    assert says in err and str(path) in err, err


def test_a_valid_tuned_parameter_file_still_trains(tuned_file, tmp_path, capsys):
    path, record = tuned_file
    path.write_text(json.dumps(record))
    results = tmp_path / "r"
    assert main([*RUN, "--objectives", "infonce", "--steps", "3", "--dim", "8", "--params-from", str(path),
                 "--results", str(results), "--leaderboard", str(tmp_path / "b")]) == 0
    [result] = ResultStore(results).scan()[0]
    assert result.params["budget"]["lr"] == record["best"]["params"]["budget"]["lr"]


# -- counts --------------------------------------------------------------------------------------------------------

HUGE = "99999999999999999999999"
COUNTS = [
    ("steps astronomically many", ["run", "--steps", HUGE], "--steps must be between 1 and 10000000"),
    ("steps one past the cap", ["run", "--steps", "10000001"], "--steps must be between 1 and 10000000"),
    ("init steps", ["run", "--init", f"infonce:{HUGE}"], "STEPS between 1 and 10000000"),
    ("init steps past the cap", ["run", "--init", "infonce:10000001"], "STEPS between 1 and 10000000"),
    ("threads", ["run", "--threads", "100000"], "--threads must be between 1 and 256"),
    ("threads one past the cap", ["run", "--threads", "257"], "--threads must be between 1 and 256"),
    ("jobs", ["run", "--jobs", "100000"], "--jobs must be a number of worker processes between 1 and 256"),
    ("dimension", ["run", "--dim", HUGE], "--dim must be between 1 and 1000000"),
    ("seeds", ["run", "--seeds", "1000000"], "a sweep holds at most 100000"),
    ("MLP layers", ["run", "--set", "encoder.mlp.layers=100000000"], "layers must be an integer between 1 and 1000"),
    ("trials", ["tune", "--trials", HUGE], "--trials must be between 1 and 100000"),
    ("trials of every study together", ["tune", "--trials", "60000", "--objectives", "infonce,pmrl"],
     "makes 120000 trials; a tune holds at most 100000"),
    ("trial seed", ["tune", "--trials", "2", "--seed", str(2 ** 32)], "--seed must be between 0 and 4294967295"),
    ("sampler seed", ["tune", "--trials", "2", "--sampler-seed", HUGE], "--sampler-seed must be between 0 and"),
    ("tune threads", ["tune", "--trials", "2", "--threads", "100000"], "--threads must be between 1 and 256"),
]


@pytest.mark.parametrize(("case", "argv", "says"), COUNTS, ids=[c[0] for c in COUNTS])
def test_every_count_has_an_upper_bound(case, argv, says, tmp_path, capsys, no_training):
    command, *rest = argv
    base = [command, *TINY, "--results", str(tmp_path / "r")]
    if "--objectives" not in rest:
        base += ["--objectives", "infonce"]
    if command == "run":
        base += ["--leaderboard", str(tmp_path / "b")]
    err = one_error_line(capsys, main([*base, *rest]))
    assert says in err, err


# -- memory --------------------------------------------------------------------------------------------------------

SIZES = [
    ("MLP hidden width", ["--objectives", "infonce", "--set", "encoder.mlp.hidden=100000000"], "a run of task"),
    ("objective's own layers", ["--objectives", "confu", "--set", "objective.confu.hidden=1000000000"],
     "objective 'confu' has"),
    ("embedding dimension", ["--objectives", "infonce", "--dim", "1000000"], "--dim 1000000: the covariance"),
]


@pytest.mark.parametrize(("case", "argv", "says"), SIZES, ids=[c[0] for c in SIZES])
def test_a_size_that_cannot_fit_in_memory_is_refused_with_the_estimate(case, argv, says, tmp_path, capsys,
                                                                       no_training):
    err = one_error_line(capsys, main([*RUN, *argv, "--results", str(tmp_path / "r"),
                                  "--leaderboard", str(tmp_path / "b")]))
    assert says in err and "GiB" in err and "more than the" in err, err


def test_the_estimate_counts_every_parameter_against_the_memory_there_is(tmp_path, capsys, monkeypatch,
                                                                         no_training):
    """With 1 MiB of memory, the default encoders (tens of thousands of parameters at 16 bytes) do not fit."""
    from pmrl_bench.runner import footprint

    monkeypatch.setattr(footprint, "memory_limit", lambda device: (2**20, "a test machine"))
    err = one_error_line(capsys, main([*RUN, "--objectives", "infonce", "--results", str(tmp_path / "r"),
                                  "--leaderboard", str(tmp_path / "b")]))
    assert "parameters: training needs about" in err and "0.0 GiB of memory of a test machine" in err, err


def test_parameters_are_counted_without_allocating_them():
    from pmrl_bench.runner.footprint import parameter_count

    assert parameter_count(lambda: torch.nn.Linear(10**6, 10**6)) == 10**12 + 10**6  # 4 TB if it were allocated
    assert parameter_count(lambda: object()) == 0


# -- the leaderboard directory ---------------------------------------------------------------------------------------

LYING_DIRECTORIES = [path for path in ("/proc/self/pmrl-bench-pages", "/proc/self/status/pages",
                                       "/sys/pmrl-bench-pages") if Path(path).parent.exists()]


@pytest.mark.skipif(not LYING_DIRECTORIES, reason="no /proc or /sys here")
@pytest.mark.parametrize("where", LYING_DIRECTORIES)
def test_a_leaderboard_directory_that_cannot_be_created_fails_before_the_sweep(where, tmp_path, capsys,
                                                                              no_training):
    err = one_error_line(capsys, main([*RUN, "--objectives", "infonce", "--results", str(tmp_path / "r"),
                                  "--leaderboard", where]))
    assert "leaderboard directory" in err and "not writable" in err, err


def test_the_leaderboard_check_creates_the_lock_directory_it_needs(tmp_path):
    from pmrl_bench.leaderboard.build import ensure_writable
    from pmrl_bench.results.locks import output_lock_path

    out = tmp_path / "new" / "pages"
    ensure_writable(out)
    assert output_lock_path(out).is_file()
