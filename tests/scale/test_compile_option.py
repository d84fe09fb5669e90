"""``run --compile``: the encoders' training forward goes through ``torch.compile`` and trains as eager does.

Inductor's code generation is torch's to test (and slow to run here); the AOT-eager backend exercises everything
``--compile`` adds: graph capture of the encoders under autograd, one compilation per encoder, evaluation on the
plain modules, and the result's device note.
"""

from __future__ import annotations

import json

import pytest
import torch

from pmrl_bench.cli import main
from pmrl_bench.device import describe
from pmrl_bench.runner.train import TrainOptions, train_and_evaluate

from scale_helpers import tiny_plan


@pytest.mark.slow
def test_compiled_encoders_train_and_evaluate_like_eager(monkeypatch):
    plan, _, registry = tiny_plan(objectives=("infonce",), steps=12)
    spec, data, cpu = plan.specs[0], plan.data["synthetic"], torch.device("cpu")
    eager = train_and_evaluate(spec, data, registry, TrainOptions(device=cpu, progress=False))

    compiled_modes = []
    real_compile = torch.compile

    def aot_eager(module, **options):
        compiled_modes.append(options.get("mode"))
        return real_compile(module, backend="aot_eager", dynamic=options.get("dynamic"))

    monkeypatch.setattr(torch, "compile", aot_eager)
    torch._dynamo.reset()
    compiled = train_and_evaluate(spec, data, registry, TrainOptions(device=cpu, progress=False, compiled=True))

    assert compiled_modes == ["default"] * len(data.modalities)  # one per encoder; CUDA graphs only on CUDA
    assert compiled.status == eager.status == "ok"
    # AOT-eager runs the captured graphs with eager's kernels: the very same training, so the very same metrics
    # (inductor's fused kernels round differently; on a GPU expect agreement up to rounding, not bit for bit).
    assert compiled.metrics == eager.metrics
    assert compiled.metrics_at_init == eager.metrics_at_init


def test_result_files_say_the_encoders_were_compiled():
    assert describe(torch.device("cpu"), None, compiled=True) == "cpu (compiled)"
    assert describe(torch.device("cuda:0"), torch.bfloat16, compiled=True) == "cuda:0 (bf16 autocast, compiled)"
    assert describe(torch.device("cuda:0"), torch.float16) == "cuda:0 (fp16 autocast)"


@pytest.mark.slow
def test_result_files_record_the_thread_count_results_depend_on(tmp_path):
    assert describe(torch.device("cpu"), None, threads=1) == "cpu (1 thread)"
    cuda = describe(torch.device("cuda:0"), torch.bfloat16, True, threads=4)
    assert cuda == "cuda:0 (bf16 autocast, compiled, 4 threads)"
    args = ["run", "--objectives", "infonce", "--tasks", "synthetic", "--seeds", "1", "--steps", "2",
            "--batch-size", "16", "--device", "cpu", "--no-progress", "--threads", "2",
            "--results", str(tmp_path / "r"), "--leaderboard", str(tmp_path / "l")]
    assert main(args) == 0
    [path] = (tmp_path / "r").rglob("*.json")
    assert json.loads(path.read_text())["device"] == "cpu (2 threads)"
