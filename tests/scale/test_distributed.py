"""Data-parallel training with 2 gloo processes on the CPU equals one process on the concatenated batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from pmrl_bench.cli import main
from pmrl_bench.errors import UsageError
from pmrl_bench.plugins import get_registry
from pmrl_bench.results import ResultStore
from pmrl_bench.runner.distributed import (
    SINGLE_PROCESS, DistributedContext, check_batch_size, data_parallel, from_environment, local_slice, shutdown,
)
from pmrl_bench.runner.train import EmbedAndScore

from scale_helpers import TINY_FLAGS

WORLD = 2
BATCH = 16  # global batch; 8 rows per rank
OBJECTIVES = ("infonce", "pmrl")


def _setup(name: str):
    """The same encoders, objective and global batch in every process (seeded)."""
    torch.manual_seed(0)
    encoders = nn.ModuleDict({m: nn.Sequential(nn.Linear(12, 16), nn.GELU(), nn.Linear(16, 8))
                              for m in ("a", "b", "c")})
    objective = get_registry().get("objective", name).create()
    batch = {m: torch.randn(BATCH, 12) for m in encoders}
    return encoders, objective, batch


def _step(model: nn.Module, batch) -> dict:
    output = model(batch)
    output.loss.backward()
    params = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    return {
        "loss": output.loss.detach(),
        "terms": {k: v.detach() for k, v in output.terms.items()},
        "grads": {n: p.grad.clone() for n, p in params.named_parameters() if p.grad is not None},
    }


def _save_ddp_step(name: str, context: DistributedContext, out_dir: str) -> None:
    encoders, objective, batch = _setup(name)
    model = data_parallel(EmbedAndScore(encoders, objective, None, context), context, torch.device("cpu"))
    index = local_slice(torch.arange(BATCH), context)
    torch.save(_step(model, {m: x[index] for m, x in batch.items()}), Path(out_dir) / f"{name}-{context.rank}.pt")


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ["PMRL_BENCH_LOAD_PLUGINS"] = ""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    context = DistributedContext(rank=rank, world_size=WORLD, local_rank=rank)
    try:
        for name in OBJECTIVES:
            _save_ddp_step(name, context, out_dir)
    finally:
        shutdown()  # the runner's own teardown: it must leave the process able to exit cleanly


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_on_the_concatenated_batch(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    for name in OBJECTIVES:
        encoders, objective, batch = _setup(name)
        reference = _step(EmbedAndScore(encoders, objective, None, SINGLE_PROCESS), batch)
        assert reference["grads"], name
        for rank in range(WORLD):
            got = torch.load(tmp_path / f"{name}-{rank}.pt")
            # every rank sees the global batch's loss (so its negatives), not the loss of its own half
            torch.testing.assert_close(got["loss"], reference["loss"], rtol=1e-5, atol=1e-6)
            assert got["terms"].keys() == reference["terms"].keys()
            for key, value in reference["terms"].items():
                torch.testing.assert_close(got["terms"][key], value, rtol=1e-5, atol=1e-6)
            # gradients after DDP's averaging equal the single-process gradients: no factor of WORLD either way
            assert got["grads"].keys() == reference["grads"].keys()
            for key, value in reference["grads"].items():
                torch.testing.assert_close(got["grads"][key], value, rtol=1e-4, atol=1e-6, msg=f"{name} {key}")


def test_context_from_torchrun_environment():
    assert from_environment({}) == SINGLE_PROCESS
    ctx = from_environment({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"})
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.enabled, ctx.is_main) == (2, 4, 0, True, False)
    with pytest.raises(UsageError, match="RANK must be in"):
        from_environment({"WORLD_SIZE": "2", "RANK": "2"})
    with pytest.raises(UsageError, match="divisible by the 3 processes"):
        check_batch_size(DistributedContext(0, 3), 64)
    assert local_slice(torch.arange(8), DistributedContext(1, 4)).tolist() == [2, 3]


@pytest.mark.slow
def test_torchrun_sweep_writes_once_and_matches_a_single_process_run(tmp_path):
    """The documented launch: ``torchrun --nproc_per_node=2 -m pmrl_bench run``; rank 0 alone writes."""
    flags = ["run", "--objectives", "infonce", "--seeds", "1", "--steps", "20", *TINY_FLAGS]
    env = {**os.environ, "PMRL_BENCH_LOAD_PLUGINS": "", "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
         "-m", "pmrl_bench", *flags, "--results", str(tmp_path / "ddp"), "--leaderboard", str(tmp_path / "ddp-lb")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert ddp.stdout.count("1 runs:") == 1  # only rank 0 reports
    assert main([*flags, "--results", str(tmp_path / "one"), "--leaderboard", str(tmp_path / "one-lb")]) == 0

    (two,), problems = ResultStore(tmp_path / "ddp").scan()
    (one,), _ = ResultStore(tmp_path / "one").scan()
    assert not problems and two.status == one.status == "ok" and two.run_id == one.run_id
    a, b = two.stability["optimisation"], one.stability["optimisation"]
    assert a["steps"] == b["steps"] == 20
    for key in {"loss_final", "grad_norm_mean"} & set(a) & set(b):  # same trajectory, up to reduction order
        assert a[key] == pytest.approx(b[key], rel=1e-3), key
    for direction, scores in one.metrics.retrieval.items():
        assert two.metrics.retrieval[direction]["R@10"] == pytest.approx(scores["R@10"], abs=0.03)
    assert (sorted(p.name for p in (tmp_path / "ddp-lb").iterdir())
            == sorted(p.name for p in (tmp_path / "one-lb").iterdir()))
