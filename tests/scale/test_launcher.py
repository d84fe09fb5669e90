"""``run``/``tune --launcher``: shards and trials as a submitit job array (the local executor here), gathered into the
pages of the same sweep without a launcher; a job that dies is one line; bad launcher input is one line, exit 2."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pmrl_bench import launch
from pmrl_bench.cli import main
from pmrl_bench.cli.app import build_parser
from pmrl_bench.cli.launcher import job_argv
from pmrl_bench.errors import UsageError
from pmrl_bench.results import ResultStore
from pmrl_bench.testing.helpers import REFERENCE_OBJECTIVE, TINY_TASK
from pmrl_bench.tuning.records import read_record

from launch_driver import CRASH_OBJECTIVE, CrashingObjective
from scale_helpers import page_without_commands

DRIVER = Path(__file__).with_name("launch_driver.py")
# 100 test instances: fewer would add a warning line about chance-level retrieval
BUDGET = ["--set", f"task.{TINY_TASK}.n_test=100", "--steps", "5", "--batch-size", "16", "--dim", "8",
          "--device", "cpu", "--no-progress"]
SWEEP = ["--tasks", TINY_TASK, "--objectives", f"infonce,{REFERENCE_OBJECTIVE}", "--seeds", "2", *BUDGET]


@pytest.fixture
def jobs_run_the_driver(monkeypatch, pmrl_register_plugin):
    """The test components here and in every job (a job runs the driver script instead of ``-m pmrl_bench``)."""
    pmrl_register_plugin(CrashingObjective(), name="launch-crash")
    monkeypatch.setattr(launch, "PROGRAM", [sys.executable, str(DRIVER)])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _pages(directory: Path) -> list[str]:
    """The pages and plots (a hidden entry is a cache of the build, not a page)."""
    return sorted(p.name for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))


@pytest.mark.slow
def test_launcher_local_ends_with_the_pages_of_the_same_sweep_without_it(tmp_path, capsys, jobs_run_the_driver):
    plain, launched = tmp_path / "plain", tmp_path / "launched"
    assert main(["run", *SWEEP, "--results", str(plain / "results"), "--leaderboard", str(plain / "lb")]) == 0
    capsys.readouterr()
    assert main(["run", *SWEEP, "--results", str(launched / "results"), "--leaderboard", str(launched / "lb"),
                 "--launcher", "local", "--shard-count", "2"]) == 0
    out, err = capsys.readouterr()
    assert "4 runs (2 local jobs): 4 ok, 0 diverged, 0 failed" in out
    assert "submitted 2 local jobs" in err

    results, problems = ResultStore(launched / "results").scan()
    assert not problems and len(results) == 4
    # a job is exactly a shard: the same command line with --shard i/N, without the launcher's options
    shards = sorted(r.command.rpartition("--shard ")[2] for r in results)
    assert shards == ["1/2", "1/2", "2/2", "2/2"] and not any("--launcher" in r.command for r in results)
    reference = {r.run_id: r for r in ResultStore(plain / "results").scan()[0]}
    for result in results:  # the same runs, the same numbers
        assert result.metrics == reference[result.run_id].metrics

    pages = _pages(plain / "lb")
    assert pages == _pages(launched / "lb") and f"{TINY_TASK}.md" in pages
    for page in pages:
        a, b = plain / "lb" / page, launched / "lb" / page
        if page.endswith(".md"):
            assert page_without_commands(a.read_text()) == page_without_commands(b.read_text()), page
        else:
            assert a.read_bytes() == b.read_bytes(), page
    launch_dir = launched / "results" / launch.LAUNCH_DIR
    assert (launch_dir / ".gitignore").read_text() == "*\n" and list(launch_dir.glob("*_log.err"))


@pytest.mark.slow
def test_a_job_that_dies_is_one_line_with_its_log_and_the_others_results_stay(tmp_path, capsys,
                                                                             jobs_run_the_driver):
    results, pages = tmp_path / "results", tmp_path / "lb"
    # two runs in two shards: the one of the objective that ends its process dies with its job
    assert main(["run", "--tasks", TINY_TASK, "--objectives", f"{REFERENCE_OBJECTIVE},{CRASH_OBJECTIVE}",
                 "--seeds", "1", *BUDGET, "--results", str(results), "--leaderboard", str(pages),
                 "--launcher", "local", "--shard-count", "2"]) == 1
    err = capsys.readouterr().err.splitlines()
    died = [line for line in err if "exited with status 3" in line]
    assert len(died) == 1 and died[0].startswith("pmrl-bench: job ")
    log = Path(died[0].rpartition("; log: ")[2])
    assert log.is_file() and log.parent == results.resolve() / launch.LAUNCH_DIR
    assert err[-1] == ("pmrl-bench: 1 run(s) were not trained because their jobs failed "
                       f"({TINY_TASK}/{CRASH_OBJECTIVE}/" + err[-1].split(f"{CRASH_OBJECTIVE}/")[1])
    kept, _ = ResultStore(results).scan()
    assert [r.objective for r in kept] == [REFERENCE_OBJECTIVE]  # the other job's result stays...
    assert REFERENCE_OBJECTIVE in (pages / f"{TINY_TASK}.md").read_text()  # ...and is on the rebuilt page


@pytest.mark.slow
def test_sigterm_while_waiting_stops_every_job_and_is_one_line(tmp_path):
    """The launcher started in the background (where SIGINT is ignored, so submitit's own cancel cannot work):
    SIGTERM stops it with one line, and every process of its jobs ends, each run stopping as after Ctrl-C."""
    import os
    import signal
    import subprocess
    import time

    import psutil

    from pmrl_bench.results.locks import lock_in_path

    command = [sys.executable, "-m", "pmrl_bench", "run", "--tasks", "synthetic", "--set",
               "task.synthetic.n_train=256", "--set", "task.synthetic.n_test=128", "--objectives", "infonce,pmrl",
               "--seeds", "1", "--steps", "20000", "--batch-size", "64", "--dim", "8", "--device", "cpu",
               "--no-progress", "--results", str(tmp_path / "r"), "--leaderboard", str(tmp_path / "lb"),
               "--launcher", "local", "--shard-count", "2"]
    env = {**os.environ, "PMRL_BENCH_LOAD_PLUGINS": "", "OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline, shards = time.time() + 240, []
    while time.time() < deadline and len(shards) < 2 and launcher.poll() is None:
        time.sleep(0.5)
        processes = psutil.Process(launcher.pid).children(recursive=True)
        shards = [p for p in processes if "--shard" in " ".join(_cmdline(p))]
    assert len(shards) == 2, launcher.communicate()[1] if launcher.poll() is not None else "no shard job started"
    claims, probe = tmp_path / "r" / ".claims", lock_in_path(tmp_path / "r" / ".claims", "write-test")
    while time.time() < deadline and len([p for p in claims.glob("*.lock") if p != probe]) < 2:
        time.sleep(0.5)  # until both jobs train their run (a run's claim is taken before it trains)
    assert time.time() < deadline, "the jobs did not start training"
    launcher.send_signal(signal.SIGTERM)
    _, err = launcher.communicate(timeout=120)
    assert launcher.returncode == 128 + signal.SIGTERM
    lines = err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("pmrl-bench: submitted 2 local jobs"), lines
    assert lines[1].startswith("pmrl-bench: interrupted by SIGTERM while waiting for 2 local job(s)")
    _, alive = psutil.wait_procs(processes, timeout=30)
    assert alive == []
    logs = [path.read_text() for path in (tmp_path / "r" / launch.LAUNCH_DIR).glob("*_log.err")]
    assert len(logs) == 2 and all("pmrl-bench: interrupted by SIGTERM" in log for log in logs)


def _cmdline(process) -> list[str]:
    try:
        return process.cmdline()
    except Exception:  # noqa: BLE001 - it ended meanwhile
        return []


@pytest.mark.slow
def test_tune_jobs_share_a_journal_file_and_a_second_launch_resumes_it(tmp_path, capsys, jobs_run_the_driver):
    root, journal = tmp_path / "results", tmp_path / "shared" / "studies.log"
    journal.parent.mkdir()
    args = ["tune", "--tasks", TINY_TASK, "--objectives", "infonce", *BUDGET, "--results", str(root),
            "--storage", str(journal), "--launcher", "local", "--job-count", "2"]
    assert main([*args, "--trials", "2"]) == 0
    first = read_record(next((root / "_tuning").rglob("*.json")))
    assert main([*args, "--trials", "3"]) == 0  # the same study, one more trial
    second = read_record(next((root / "_tuning").rglob("*.json")))
    assert [t.number for t in first.trials] == [0, 1] and [t.number for t in second.trials] == [0, 1, 2]
    assert [(t.params, t.value) for t in second.trials[:2]] == [(t.params, t.value) for t in first.trials]
    assert journal.stat().st_size > 0 and not (root / "_tuning" / "studies.db").exists()
    assert "1 studies; tuned parameters in" in capsys.readouterr().out


def test_a_stale_trial_of_another_machine_in_a_journal_is_failed_and_retried(tmp_path, pmrl_register_plugin):
    """A job killed on another node leaves a running trial whose heartbeat stops: after the grace period the next
    process fails it and the study still ends with exactly N completed trials (a journal has no Optuna heartbeat)."""
    import time

    import optuna

    from pmrl_bench.tuning.storage import GRACE_PERIOD, open_storage, storage_url
    from pmrl_bench.tuning.study import HEARTBEAT_ATTR

    root, journal = tmp_path / "results", tmp_path / "studies.log"
    args = ["tune", "--tasks", TINY_TASK, "--objectives", "infonce", *BUDGET, "--results", str(root),
            "--storage", f"journal://{journal}"]
    assert main([*args, "--trials", "1"]) == 0
    storage = open_storage(storage_url(str(journal), root))
    [summary] = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    stale = study.ask()
    stale.set_user_attr("host", "another-node")
    stale.set_user_attr(HEARTBEAT_ATTR, time.time() - GRACE_PERIOD - 60)

    assert main([*args, "--trials", "2"]) == 0
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials(deepcopy=False)
    assert [t.state.name for t in trials if t.number == stale.number] == ["FAIL"]
    assert sum(t.state.name == "COMPLETE" for t in trials) == 2


@pytest.mark.parametrize("storage, message", [
    ("{tmp}/missing/studies.log", "the directory '{tmp}/missing' does not exist"),
    ("journal://{tmp}/foreign.log", "'{tmp}/foreign.log' is not an Optuna journal"),
    ("journal://", "names no file"),
])
def test_a_journal_that_cannot_be_used_is_one_line(tmp_path, capsys, pmrl_register_plugin, storage, message):
    (tmp_path / "foreign.log").write_text("this is not a journal\n")
    storage, message = storage.format(tmp=tmp_path), message.format(tmp=tmp_path)
    assert main(["tune", "--tasks", TINY_TASK, "--objectives", "infonce", *BUDGET, "--trials", "1",
                 "--results", str(tmp_path / "results"), "--storage", storage]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


@pytest.mark.parametrize("extra, message", [
    (["--shard-count", "2"], "--shard-count needs --launcher slurm or --launcher local"),
    (["--slurm-time", "10"], "--slurm-time needs --launcher slurm or --launcher local"),
    (["--launcher", "local"], "--launcher needs --shard-count N"),
    (["--launcher", "local", "--shard-count", "2", "--shard", "1/2"], "--launcher submits every shard itself"),
    (["--launcher", "local", "--shard-count", "0"], "--shard-count must be at least 1"),
    (["--launcher", "local", "--shard-count", "5"], "--shard-count 5 is more than the sweep's 4 runs: give at most 4"),
    (["--launcher", "local", "--shard-count", "2", "--slurm-partition", "gpu"],
     "--slurm-partition applies to --launcher slurm"),
    (["--launcher", "slurm", "--shard-count", "2"], "--launcher slurm needs --slurm-time"),
    (["--launcher", "slurm", "--shard-count", "2", "--slurm-time", "1h"], "--slurm-time must be MINUTES"),
    (["--launcher", "slurm", "--shard-count", "2", "--slurm-time", "10", "--slurm-arg", "account"],
     "--slurm-arg 'account' is not KEY=VALUE"),
    (["--launcher", "slurm", "--shard-count", "2", "--slurm-time", "10", "--slurm-gpus", "-1"],
     "--slurm-gpus must be >= 0"),
    (["--launcher", "slurm", "--shard-count", "2", "--slurm-time", "10"], "sbatch and srun are not on PATH"),
])
def test_bad_launcher_input_is_one_line_before_any_job(tmp_path, capsys, monkeypatch, pmrl_register_plugin, extra,
                                                       message):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here, whatever the machine has
    assert main(["run", *SWEEP, "--results", str(tmp_path / "r"), "--leaderboard", str(tmp_path / "lb"),
                 *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "r" / launch.LAUNCH_DIR).exists()


def _fake_sbatch(monkeypatch, bin_dir: Path, script: str) -> None:
    """The only ``sbatch`` on PATH runs ``script`` (sh) instead of submitting: the SLURM path without a cluster."""
    bin_dir.mkdir()
    for tool, body in (("sbatch", script), ("srun", "exit 1")):  # submitit looks for srun too
        (bin_dir / tool).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")


def test_slurm_submits_one_array_with_the_options_given(tmp_path, capsys, monkeypatch):
    _fake_sbatch(monkeypatch, tmp_path / "bin", f'cp "$1" {tmp_path}/submitted.sh && echo "Submitted batch job 4242"')
    monkeypatch.setattr(launch, "_wait", lambda jobs, *args: [job.job_id for job in jobs])
    settings = launch.LauncherSettings("slurm", 3, partition="gpu", time_min=120, gpus=1, cpus=4,
                                       extra={"account": "lab"})
    launch.check_launcher(settings, "--shard-count")
    commands, labels = launch.job_commands(["run", "--steps", "5"], 3, shards=True)
    jobs = launch.launch_jobs(commands, labels, settings, tmp_path / "results", "pmrl-bench-run", "")
    assert jobs == ["4242_0", "4242_1", "4242_2"]
    script = (tmp_path / "submitted.sh").read_text()
    for line in ("#SBATCH --array=0-2%3", "#SBATCH --partition=gpu", "#SBATCH --time=120",
                 "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=4", "#SBATCH --account=lab",
                 "#SBATCH --job-name=pmrl-bench-run"):
        assert line in script.splitlines(), line
    assert f"{launch.LAUNCH_DIR}/%A_%a_0_log.err" in script
    assert "submitted 3 slurm jobs as array 4242" in capsys.readouterr().err


def test_an_array_that_sbatch_refuses_is_one_line(tmp_path, capsys, monkeypatch, pmrl_register_plugin):
    _fake_sbatch(monkeypatch, tmp_path / "bin", 'echo "sbatch: error: invalid partition specified: nope" >&2; exit 1')
    assert main(["run", *SWEEP, "--results", str(tmp_path / "r"), "--leaderboard", str(tmp_path / "lb"),
                 "--launcher", "slurm", "--shard-count", "2", "--slurm-time", "10",
                 "--slurm-partition", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["pmrl-bench: error: --launcher slurm: the jobs could not be submitted (sbatch: error: invalid "
                   "partition specified: nope); check the --slurm-* options"]


def test_tune_with_more_jobs_than_trials_is_one_line(tmp_path, capsys, pmrl_register_plugin):
    assert main(["tune", "--tasks", TINY_TASK, "--objectives", "infonce", *BUDGET, "--trials", "2",
                 "--results", str(tmp_path), "--launcher", "local", "--job-count", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--job-count 3 is more than --trials 2" in err[0]


def test_without_submitit_the_launcher_says_how_to_install_it(tmp_path, capsys, monkeypatch, pmrl_register_plugin):
    monkeypatch.setitem(sys.modules, "submitit", None)  # what an environment without the extra sees
    assert main(["run", *SWEEP, "--results", str(tmp_path), "--launcher", "local", "--shard-count", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["pmrl-bench: error: --launcher needs submitit, which is not installed: "
                   "pip install 'pmrl-bench[cluster]' (or: pip install submitit)"]


@pytest.mark.parametrize("text, minutes", [("90", 90), ("1:30:00", 90), ("45:30", 46), ("2-00:00:00", 2880),
                                           ("1-2", 1560), ("1-0:30", 1470), ("0:00:01", 1)])
def test_slurm_time_reads_as_sbatch_does(text, minutes):
    assert launch.parse_time(text) == minutes


@pytest.mark.parametrize("text", ["0", "0:00", "1h", "1:2:3:4", "-5", ""])
def test_a_slurm_time_that_is_not_one_is_a_usage_error(text):
    with pytest.raises(UsageError, match="--slurm-time must be"):
        launch.parse_time(text)


def test_a_job_runs_the_command_line_less_the_launcher_options_in_any_spelling():
    argv = ["run", "--tasks", "a,b", "--launcher=slurm", "--shard-c", "4", "--set", "task.x.k=--launch",
            "--slurm-time", "2:00:00", "--slurm-arg", "account=lab", "--slurm-arg=qos=high", "--slurm-gpus=1",
            "--steps", "5", "--slurm-part", "gpu"]
    build_parser().parse_args(argv)  # what the command line accepts, abbreviations included
    assert job_argv(argv, "--shard-count") == ["run", "--tasks", "a,b", "--set", "task.x.k=--launch", "--steps", "5"]
    commands, labels = launch.job_commands(["run", "--steps", "5"], 2, shards=True)
    assert [c[-2:] for c in commands] == [["--shard", "1/2"], ["--shard", "2/2"]]
    assert commands[0][:len(launch.PROGRAM)] == launch.PROGRAM and "--no-progress" in commands[0]
    assert labels[1] == "2/2 (--shard 2/2)"
