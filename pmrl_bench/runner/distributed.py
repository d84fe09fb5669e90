"""Distributed data-parallel training through ``torch.distributed``, launched by ``torchrun``.

``torchrun --nproc_per_node=N -m pmrl_bench run ...`` starts N processes; each reads its rank from the
environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) and joins one process group (NCCL on
CUDA, gloo on CPU). Every process trains the same sweep in lock step:

* ``--batch-size`` stays the *global* batch: each rank embeds its contiguous 1/N slice of the same seeded batch.
* The embeddings are all-gathered with a differentiable all-gather, and every rank evaluates the objective on the
  whole global batch, so each objective sees all the negatives without knowing it runs distributed (per-instance
  terms such as PMRL's singular values simply see gathered rows).
* Gradients: the all-gather's backward *sums* the gradient of every rank's (identical) loss into each slice, so a
  rank's encoder gradient is N x its share of the global gradient; DDP then *averages* over ranks, and the two
  factors cancel: the update equals one process training on the concatenated batch.
* Only rank 0 evaluates, writes result files and rebuilds leaderboards.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from pmrl_bench.errors import UsageError


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a (possibly one-process) data-parallel job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE_PROCESS = DistributedContext()


def from_environment(environ: Mapping[str, str] | None = None) -> DistributedContext:
    """The context torchrun describes in the environment, or a single process when it is absent."""
    env = os.environ if environ is None else environ
    try:
        world_size = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local_rank = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise UsageError(f"WORLD_SIZE, RANK and LOCAL_RANK must be integers (as torchrun sets them): {exc}") from None
    if world_size < 1 or not 0 <= rank < world_size:
        raise UsageError(f"RANK must be in [0, WORLD_SIZE), got RANK={rank} WORLD_SIZE={world_size}")
    return DistributedContext(rank, world_size, local_rank)


def initialise(context: DistributedContext, device: torch.device) -> torch.device:
    """Join the process group (once) and return this rank's device (``cuda:LOCAL_RANK`` under torchrun on GPUs)."""
    if not context.enabled:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", context.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                rank=context.rank, world_size=context.world_size)
    return device


def shutdown() -> None:
    """Leave the process group, after freeing every DDP wrapper still waiting in a reference cycle.

    A DDP wrapper collected only after its process group is destroyed aborts the process at exit ("terminate called
    without an active exception", SIGABRT) in a share of gloo runs, so the garbage is collected first.
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def check_batch_size(context: DistributedContext, batch_size: int) -> None:
    if batch_size % context.world_size:
        raise UsageError(
            f"--batch-size {batch_size} (the global batch) must be divisible by the {context.world_size} processes"
        )


def local_slice(index: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """This rank's contiguous share of a global batch; rank order = order in the gathered batch."""
    if not context.enabled:
        return index
    size = len(index) // context.world_size
    return index[context.rank * size : (context.rank + 1) * size]


def gather_embeddings(embeddings: Mapping[str, torch.Tensor], context: DistributedContext) -> dict[str, torch.Tensor]:
    """Concatenate every rank's rows in rank order, keeping gradients (torch.distributed.nn's all_gather)."""
    if not context.enabled:
        return dict(embeddings)
    from torch.distributed.nn.functional import all_gather

    return {m: torch.cat(all_gather(z.contiguous()), dim=0) for m, z in embeddings.items()}


def data_parallel(module: nn.Module, context: DistributedContext, device: torch.device) -> nn.Module:
    """Wrap ``module`` in DistributedDataParallel when the job has several processes (it averages gradients)."""
    if not context.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def broadcast(value: Any, context: DistributedContext) -> Any:
    """Rank 0's ``value`` on every rank (decisions such as which runs to skip must agree)."""
    if not context.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
