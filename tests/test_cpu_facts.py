"""Each result records the CPU model and the ATen CPU capability it computed with (CPU numbers move with both);
files written before they were recorded stay valid and read as "not recorded"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

import pmrl_bench
from pmrl_bench import device
from pmrl_bench.cli import main
from pmrl_bench.results import ResultStore, RunResult
from pmrl_bench.results.schema import FILE_CONTENT

ROOT = Path(__file__).resolve().parents[1]
TINY = ["run", "--objectives", "infonce", "--tasks", "synthetic", "--set", "task.synthetic.n_train=64",
        "--set", "task.synthetic.n_test=32", "--batch-size", "16", "--steps", "2", "--seeds", "1", "--dim", "8",
        "--device", "cpu", "--no-progress"]


@pytest.fixture
def fresh_cpu_model():
    device.cpu_model.cache_clear()
    yield device.cpu_model
    device.cpu_model.cache_clear()


def test_the_model_is_proc_cpuinfos_model_name(fresh_cpu_model):
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
             if line.startswith("model name")]
    if not names:
        pytest.skip("no 'model name' in /proc/cpuinfo here")
    assert fresh_cpu_model() == names[0]


@pytest.mark.parametrize(("processor", "machine", "expected"), [("Xeon 9", "x86_64", "Xeon 9"), ("", "arm64", "arm64"),
                                                                ("", "", "unknown"), ("x" * 300, "", "x" * 256)])
def test_without_proc_cpuinfo_the_platform_names_the_cpu(processor, machine, expected, monkeypatch,
                                                         fresh_cpu_model):
    def no_proc(*args, **kwargs):
        raise FileNotFoundError("/proc/cpuinfo")

    monkeypatch.setattr(device, "open", no_proc, raising=False)
    monkeypatch.setattr(device.platform, "processor", lambda: processor)
    monkeypatch.setattr(device.platform, "machine", lambda: machine)
    assert fresh_cpu_model() == expected


def test_the_capability_is_the_one_torch_runs_its_kernels_with():
    facts = device.cpu_facts()
    assert facts == {"model": device.cpu_model(), "capability": torch.backends.cpu.get_cpu_capability()}


@pytest.mark.slow
@pytest.mark.parametrize(("asked", "recorded"), [("default", "DEFAULT"), ("avx2", "AVX2")])
def test_a_lowered_capability_is_what_the_result_says(asked, recorded, tmp_path):
    """ATEN_CPU_CAPABILITY is read once per process: a fresh one, as a user would start it."""
    if asked == "avx2" and "avx2" not in Path("/proc/cpuinfo").read_text(errors="replace"):
        pytest.skip("this CPU has no AVX2: torch would fall back")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": asked, "OMP_NUM_THREADS": "1", "PMRL_BENCH_LOAD_PLUGINS": ""}
    results = tmp_path / "results"
    done = subprocess.run([sys.executable, "-m", "pmrl_bench", *TINY, "--results", str(results), "--leaderboard",
                           str(tmp_path / "boards")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (result,), problems = ResultStore(results).scan()
    assert problems == [] and result.cpu is not None
    assert result.cpu.capability == recorded and result.cpu.model == device.cpu_model()


@pytest.mark.slow  # a whole run and its pages
def test_a_run_records_its_cpu_beside_its_device(tmp_path, capsys):
    results = tmp_path / "results"
    assert main([*TINY, "--results", str(results), "--leaderboard", str(tmp_path / "boards")]) == 0
    (path,) = [p for p in results.rglob("*.json") if not p.name.startswith(".")]
    content = json.loads(path.read_text())
    assert content["cpu"] == device.cpu_facts() and content["device"].startswith("cpu")
    wide = pmrl_bench.load_results(results)
    assert wide.loc[0, "cpu/model"] == device.cpu_model()
    assert wide.loc[0, "cpu/capability"] == torch.backends.cpu.get_cpu_capability()
    assert list(wide.columns).index("cpu/capability") == list(wide.columns).index("device") + 1


_WITHOUT, _AS_STORED = "without", "as stored"  # a cpu block taken out, or left as the committed file has it


def _copy_committed(target_root: Path, cpus: list[dict[str, str] | None | str]) -> list[Path]:
    """Copy the first committed synthetic results under ``target_root``, one per entry of ``cpus``, each with that
    cpu block (or with it taken out, or as stored); returns the committed files copied."""
    committed = sorted((ROOT / "results" / "synthetic").rglob("*.json"))[:len(cpus)]
    for source, cpu in zip(committed, cpus):
        content = json.loads(source.read_text())
        if cpu == _WITHOUT:
            content.pop("cpu", None)
        elif cpu != _AS_STORED:
            content["cpu"] = cpu
        target = target_root / source.relative_to(ROOT / "results")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(content))
    return committed


def test_result_files_without_cpu_facts_stay_valid_and_read_as_not_recorded(tmp_path):
    # A file written before the field existed: a committed result with its cpu block taken out, beside one with it.
    committed = _copy_committed(tmp_path, [_WITHOUT, _AS_STORED])
    found, problems = ResultStore(tmp_path).scan()
    assert len(found) == 2 and problems == []
    assert sum(r.cpu is None for r in found) == 1 + (json.loads(committed[1].read_text()).get("cpu") is None)
    wide = pmrl_bench.load_results(tmp_path)
    assert {"cpu/model", "cpu/capability"} <= set(wide.columns)
    assert wide["cpu/model"].isna().sum() == sum(r.cpu is None for r in found)


@pytest.mark.parametrize("cpu", [
    {"model": "Xeon"},                                           # capability missing
    {"model": "Xeon", "capability": "AVX2", "cores": 4},         # a field the schema does not know
    {"model": 7, "capability": "AVX2"},                          # not a string
    {"model": "x" * 257, "capability": "AVX2"},                  # longer than any CPU name
    "Xeon AVX2",                                                 # not an object
])
def test_a_crafted_cpu_block_is_refused(cpu):
    path = next(p for p in (ROOT / "results" / "synthetic").rglob("*.json"))
    content = json.loads(path.read_text())
    RunResult.model_validate_json(json.dumps({**content, "cpu": None}), context=FILE_CONTENT)
    with pytest.raises(ValidationError, match="cpu"):
        RunResult.model_validate_json(json.dumps({**content, "cpu": cpu}), context=FILE_CONTENT)


def test_show_and_the_pages_name_every_cpu_the_results_were_computed_on(tmp_path, capsys):
    from pmrl_bench.leaderboard.pages import provenance

    _copy_committed(tmp_path, [{"model": "Xeon A", "capability": "AVX2"}, {"model": "Epyc B", "capability": "AVX512"},
                               None])
    named = "CPUs Epyc B (AVX512), Xeon A (AVX2)"  # a file that records none adds nothing
    assert main(["show", "--results", str(tmp_path)]) == 0
    assert f"computed on devices cpu (1 thread); {named}\n" in capsys.readouterr().out
    found, _ = ResultStore(tmp_path).scan()
    assert any(line.endswith(f"devices cpu (1 thread); {named}") for line in provenance(found))
