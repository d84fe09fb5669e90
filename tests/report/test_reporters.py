"""Experiment tracking: ``run --log`` sends training scalars and results to reporters. The built-in TensorBoard
reporter writes event files that TensorBoard's own reader loads; a reporter plugin written as docs/plugins.md
shows receives the scalars; a reporter that breaks never breaks a run."""

from __future__ import annotations

import json

import pytest

from pmrl_bench import hookimpl
from pmrl_bench.cli import main
from pmrl_bench.errors import UsageError
from pmrl_bench.tracking import Reporter
from pmrl_bench.testing import REFERENCE_OBJECTIVE, TINY_TASK

STEPS = 30  # the loop flushes at steps 25 and 30; probes at 0, 25 and 30
RUN = ["run", "--objectives", REFERENCE_OBJECTIVE, "--tasks", TINY_TASK, "--steps", str(STEPS), "--batch-size", "16",
       "--dim", "16", "--device", "cpu", "--no-progress", "--results", "results", "--leaderboard", "boards"]


class Collector(Reporter):
    """The reporter of docs/plugins.md, keeping what it is told instead of sending it to a service."""

    calls: list[tuple] = []

    def start_run(self, run):
        self.calls.append(("start", run))

    def log_scalars(self, step, scalars):
        self.calls.append(("scalars", step, dict(scalars)))

    def end_run(self, result):
        self.calls.append(("end", result))

    def close(self):
        self.calls.append(("close",))


class CollectorPlugin:
    @hookimpl
    def register_reporters(self, register):
        register("collect", Collector)


@pytest.fixture
def collector(pmrl_register_plugin, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Collector, "calls", [])
    pmrl_register_plugin(CollectorPlugin(), name="collector")
    return Collector.calls


def _stored(tmp_path) -> dict[str, dict]:
    return {json.loads(p.read_text())["run_id"]: json.loads(p.read_text())
            for p in (tmp_path / "results").rglob("*.json") if "_logs" not in p.parts}


@pytest.mark.slow
def test_a_reporter_plugin_receives_step_scalars_and_results(collector, tmp_path, capsys):
    assert main([*RUN, "--seeds", "2", "--log", "collect"]) == 0
    starts = [c[1] for c in collector if c[0] == "start"]
    ends = [c[1] for c in collector if c[0] == "end"]
    stored = _stored(tmp_path)
    assert [r.run_id for r in starts] == [r.run_id for r in ends] == sorted(stored)
    assert collector[-1] == ("close",) and sum(c[0] == "close" for c in collector) == 1
    for run in starts:
        assert run.log_dir.is_dir() and run.log_dir == (
            tmp_path / "results" / "_logs" / "collect" / run.task / run.objective / f"{run.config_id}-seed{run.seed}")
        assert run.steps == STEPS and run.params == stored[run.run_id]["params"]
    first = collector[1 : collector.index(("end", ends[0]))]  # everything the first run logged
    train = [(step, s) for _, step, s in first if "train/loss" in s]
    probes = [(step, s) for _, step, s in first if "probe/R@1" in s]
    assert [step for step, _ in train] == list(range(1, STEPS + 1))
    assert [step for step, _ in probes] == [0, 25, 30]
    assert {"train/grad_norm", "train/term/m0|m1", "train/term/m1|m2"} <= set(train[0][1])
    assert all(0 <= s["probe/R@1"] <= 1 and 1 / 3 - 1e-6 <= s["probe/sigma1_share"] <= 1 + 1e-6 for _, s in probes)
    result = stored[starts[0].run_id]
    assert train[-1][1]["train/loss"] == pytest.approx(result["stability"]["optimisation"]["loss_final"], rel=1e-4)
    assert probes[-1][1]["probe/R@1"] == pytest.approx(result["stability"]["probe_retrieval"]["r1_final"], rel=1e-4)
    assert ends[0].model_dump() == ends[0].model_validate(result).model_dump()  # the stored result itself
    assert "reporters" not in result["stability"]  # tracking adds nothing to result files

    collector.clear()
    assert main([*RUN, "--seeds", "2", "--log", "collect"]) == 0  # every run already done: nothing to report
    assert collector == [("close",)]


@pytest.mark.slow
def test_tensorboard_event_files_load_in_tensorboards_reader(pmrl_plugin_manager, tmp_path, monkeypatch, capsys):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    monkeypatch.chdir(tmp_path)
    assert main([*RUN, "--seeds", "1", "--log", "tensorboard"]) == 0
    (run_id, result), = _stored(tmp_path).items()
    run_dir = tmp_path / "results" / "_logs" / "tensorboard" / f"{run_id}"
    events = list(run_dir.glob("events.out.tfevents.*"))
    assert len(events) == 1  # one run per directory
    reader = event_accumulator.EventAccumulator(str(run_dir))
    reader.Reload()
    scalars = set(reader.Tags()["scalars"])
    assert {"train/loss", "train/grad_norm", "train/term/m0|m1", "probe/R@1", "probe/sigma1_share",
            "test/mean_R@1", "test/R@1/m0->m1", "test/linear:fused"} <= scalars
    assert [e.step for e in reader.Scalars("train/loss")] == list(range(1, STEPS + 1))
    assert [e.step for e in reader.Scalars("probe/sigma1_share")] == [0, 25, 30]
    (final,) = reader.Scalars("test/mean_R@1")
    directions = result["metrics"]["retrieval"].values()
    assert final.step == STEPS and final.value == pytest.approx(sum(d["R@1"] for d in directions) / len(directions))
    (probe,) = reader.Scalars("test/linear:fused")
    assert probe.value == pytest.approx(result["metrics"]["classification"]["linear:fused"])

    assert main([*RUN, "--seeds", "1", "--log", "tensorboard", "--rerun"]) == 0  # a rerun replaces the run's curves
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1


@pytest.mark.slow
def test_tensorboard_writes_every_run_of_a_parallel_sweep(pmrl_plugin_manager, tmp_path, monkeypatch, capsys):
    """With --jobs 2 each worker opens its own reporters: every run's event file holds its curves and result."""
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    monkeypatch.chdir(tmp_path)
    assert main([*RUN, "--seeds", "4", "--jobs", "2", "--log", "tensorboard"]) == 0
    stored = _stored(tmp_path)
    assert len(stored) == 4
    for run_id, result in stored.items():
        run_dir = tmp_path / "results" / "_logs" / "tensorboard" / run_id
        assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1, run_id
        reader = event_accumulator.EventAccumulator(str(run_dir))
        reader.Reload()
        assert [e.step for e in reader.Scalars("train/loss")] == list(range(1, STEPS + 1))
        (final,) = reader.Scalars("test/mean_R@1")
        directions = result["metrics"]["retrieval"].values()
        assert final.value == pytest.approx(sum(d["R@1"] for d in directions) / len(directions))


class Broken(Reporter):
    def log_scalars(self, step, scalars):
        raise ConnectionError("tracking server unreachable")


class NeedsAKey:
    def __init__(self):
        raise UsageError("reporter 'needs-key' needs TRACKING_KEY set")


class MorePlugins:
    @hookimpl
    def register_reporters(self, register):
        register("broken", Broken)
        register("needs-key", NeedsAKey)


def test_a_failing_reporter_is_switched_off_and_the_runs_go_on(collector, pmrl_register_plugin, tmp_path, capsys):
    pmrl_register_plugin(MorePlugins(), name="more")
    assert main([*RUN, "--seeds", "2", "--log", "broken,collect"]) == 0
    err = capsys.readouterr().err
    assert err.count("reporter 'broken' failed in log_scalars: ConnectionError") == 1
    assert all(r["status"] == "ok" for r in _stored(tmp_path).values())
    assert sum(c[0] == "end" for c in collector) == 2  # the other reporter still heard every run


@pytest.mark.parametrize(("log", "expected"), [
    ("nope", "unknown reporter in --log 'nope'"),
    ("needs-key", "needs TRACKING_KEY set"),
])
def test_a_reporter_that_cannot_start_stops_the_run_before_training(log, expected, collector, pmrl_register_plugin,
                                                                     tmp_path, capsys):
    pmrl_register_plugin(MorePlugins(), name="more")
    assert main([*RUN, "--log", log]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err
    assert not (tmp_path / "results").exists()
