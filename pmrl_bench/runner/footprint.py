"""Whether a run's parameters fit in memory, decided before anything is allocated.

An embedding or encoder size typed with a few zeros too many (``--dim``, ``--set encoder.mlp.hidden=...``) would
otherwise be allocated while planning or in the first run, and end as a ``failed`` run charged to the objective, or
as the OOM killer's work. Components are built once on PyTorch's ``meta`` device, which records shapes and allocates
nothing, and their parameters are counted; training holds each parameter as a float32 weight, its gradient and
AdamW's two moments. Every run also computes the covariance of its embeddings (``dim`` x ``dim`` in float64, on
the CPU, for the stability metrics' spectrum) and its eigenvalues. More than the memory of the device is bad input,
refused with the estimate in the line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pmrl_bench.errors import UsageError

BYTES_PER_PARAMETER = 16  # float32 weight + gradient + AdamW's exp_avg and exp_avg_sq
BYTES_PER_COVARIANCE_ENTRY = 16  # the float64 covariance and the copy its eigendecomposition works on
HOST = "this machine"


def parameter_count(build: Callable[[], Any]) -> int | None:
    """The number of parameters of what ``build()`` returns, built on the meta device; None when it cannot be built
    there (a component that computes with its tensors while it is built). A usage error of the factory (a range
    check) propagates: it is the same error the real build would raise."""
    import torch

    try:
        with torch.device("meta"):
            built = build()
    except UsageError:
        raise
    except Exception:  # noqa: BLE001 - not buildable on meta: the caller builds it for real, as before
        return None
    parameters = getattr(built, "parameters", None)
    if not callable(parameters):
        return 0
    try:
        return sum(int(p.numel()) for p in parameters())
    except Exception:  # noqa: BLE001 - a module with unusual parameters: no estimate
        return None


def memory_limit(device: str) -> tuple[int, str]:
    """``(bytes, name)`` of the memory a run on ``device`` (``auto``, ``cpu``, ``cuda[:i]``) trains in."""
    import psutil
    import torch

    if device != "cpu" and torch.cuda.is_available():
        index = torch.device(device).index if device.startswith("cuda") else None
        index = torch.cuda.current_device() if index is None else index
        if 0 <= index < torch.cuda.device_count():
            return int(torch.cuda.get_device_properties(index).total_memory), f"GPU cuda:{index}"
    return int(psutil.virtual_memory().total), HOST


def check_fits_memory(what: str, parameters: int, device: str, dim: int = 0) -> None:
    """Refuse ``parameters`` that training cannot hold on ``device``, or an embedding dimension ``dim`` whose
    covariance the host cannot hold beside them, with the estimate."""
    need = parameters * BYTES_PER_PARAMETER
    have, where = memory_limit(device)
    if need > have:
        raise UsageError(f"{what} has {parameters:,} parameters: training needs about {_gib(need)} (a float32 "
                         f"weight, its gradient and two AdamW moments each, {BYTES_PER_PARAMETER} bytes), more than "
                         f"the {_gib(have)} of memory of {where}; lower --dim or the size parameters "
                         "(--set encoder.NAME.hidden=..., ...)")
    covariance = dim * dim * BYTES_PER_COVARIANCE_ENTRY
    on_host = need if where == HOST else 0
    host = have if where == HOST else memory_limit("cpu")[0]
    if covariance and covariance + on_host > host:
        raise UsageError(f"--dim {dim}: the covariance of the embeddings that every run's stability metrics compute "
                         f"({dim:,} x {dim:,} in float64, with its eigendecomposition) needs about {_gib(covariance)}"
                         f"{f' beside {_gib(on_host)} of training state' if on_host else ''}, more than the "
                         f"{_gib(host)} of memory of {HOST}; lower --dim")


def _gib(size: int) -> str:
    return f"{size / 2**30:,.1f} GiB"
