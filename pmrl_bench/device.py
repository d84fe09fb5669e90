"""Devices and precision: ``auto`` picks CUDA when it is available; mixed precision, uploads and clock syncs; the
CPU model and kernel capability a result records.

Mixed precision covers the encoders only: the runner casts embeddings to float32 before normalising them and
handing them to the objective, and objectives keep their linear algebra (SVD, volumes) in float32 outside autocast.
"""

from __future__ import annotations

import functools
import platform
import re

import numpy as np
import torch

from pmrl_bench.errors import UsageError

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(spec: str) -> torch.device:
    if not _DEVICE.match(spec):
        raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, got {spec!r}")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {spec} asked for CUDA, but no CUDA device is available; "
                             "use --device cpu or auto")
        device = torch.device(spec)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) are visible")
        return device
    return torch.device("cpu")


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The encoders' autocast dtype, or None for plain float32.

    ``auto``: bfloat16 on a CUDA device that supports it, else float16 on CUDA (with a GradScaler), float32 on CPU
    (CPU autocast rarely pays off for small encoders). ``bf16``/``fp16`` force autocast on any device, which is also
    how the CUDA path is tested on a CPU-only machine.
    """
    if precision not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return _DTYPES[precision]
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def describe(device: torch.device, dtype: torch.dtype | None, compiled: bool = False,
             threads: int | None = None) -> str:
    """What a result file records as its device: ``cuda:0``, ``cuda:0 (bf16 autocast)``, ``cpu (compiled, 1 thread)``.

    The thread count is there because results depend on it (reductions run in another order)."""
    notes = [f"{'bf16' if dtype is torch.bfloat16 else 'fp16'} autocast"] if dtype is not None else []
    notes += ["compiled"] if compiled else []
    notes += [f"{threads} thread{'s' if threads != 1 else ''}"] if threads is not None else []
    return f"{device} ({', '.join(notes)})" if notes else str(device)


@functools.cache
def cpu_model() -> str:
    """The CPU's model name: ``/proc/cpuinfo``'s "model name" on Linux, else what the platform reports."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("model name") and ":" in line:
                    return line.split(":", 1)[1].strip()[:256]  # the result schema's bound
    except OSError:  # not Linux, or /proc not mounted
        pass
    return (platform.processor() or platform.machine() or "unknown")[:256]


def cpu_facts() -> dict[str, str]:
    """What a result records of the CPU beside ``describe``'s device: the model and the ATen CPU capability
    (``DEFAULT``, ``AVX2``, ``AVX512``, ...; ``ATEN_CPU_CAPABILITY`` can lower it). CPU numbers move with both: the
    kernels they select add floating-point terms in another order (README, "Committed results")."""
    return {"model": cpu_model(), "capability": torch.backends.cpu.get_cpu_capability()}


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so a clock read afterwards measures work done, not work launched."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def upload(array: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host data onto ``device`` once (a split, a run's training inputs): a plain copy.

    Not through pinned memory: page-locking pays for copies that overlap computation, not for one copy of a few
    MB, and ``pin_memory`` took about 6 ms per array on an H100 machine (113 ms of a default ``mfeat`` run)."""
    return torch.as_tensor(array).to(device)


def stage(array: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host data onto ``device`` through pinned memory and an asynchronous copy when the device is CUDA: for
    batches gathered on the host, whose copy then overlaps the previous step."""
    tensor = torch.as_tensor(array)
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


class BatchSource:
    """Training inputs of one run, per modality, served batch by batch.

    Small splits live on the device (one upload); splits above ``device_bytes`` stay on the host and each batch is
    gathered there and copied through pinned memory without blocking, so the copy overlaps the previous step.
    """

    DEVICE_BYTES = 2 * 1024**3

    def __init__(self, inputs: dict[str, np.ndarray | torch.Tensor], device: torch.device,
                 device_bytes: int | None = None) -> None:
        host = {m: torch.as_tensor(x) for m, x in inputs.items()}
        limit = self.DEVICE_BYTES if device_bytes is None else device_bytes
        self.device = device
        self.on_device = device.type == "cpu" or sum(x.nbytes for x in host.values()) <= limit
        self.tensors = {m: upload(x, device) for m, x in host.items()} if self.on_device else host

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.on_device:
            index = index.to(self.device, non_blocking=True)
            return {m: x[index] for m, x in self.tensors.items()}
        return {m: stage(x[index], self.device) for m, x in self.tensors.items()}
