"""How many runs train at once (``--jobs``), on which device each worker trains, and with how many threads.

* **Threads.** Every run uses ``threads`` torch intra-op threads (and as many BLAS/OpenMP threads, for the
  scikit-learn probes), in a worker or not: results depend on the thread count (reductions are split
  differently), so fixing it per run makes ``--jobs 2`` reproduce ``--jobs 1`` bit for bit.
* **Devices.** On CUDA the workers share the device; with ``--device cuda`` (or ``auto``) and several visible
  GPUs, worker ``i`` takes GPU ``i mod count``. ``--jobs auto`` is one worker per GPU there, and on a CPU the
  physical cores available to this process divided by ``threads``; never more than the runs to do.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from pmrl_bench.console import shorten
from pmrl_bench.errors import UsageError

AUTO = "auto"
# Upper bounds, like the cap on a sweep's runs: past them a value is a typo, and the OS or OpenMP would fail
# without a pmrl-bench line (100 000 threads end inside libgomp; as many workers exhaust memory).
MAX_JOBS = 256
MAX_THREADS = 256


def parse_jobs(text: str) -> int | str:
    """``--jobs`` value: a positive integer or ``auto``."""
    return _count_or_auto(text, "--jobs", f"a number of worker processes between 1 and {MAX_JOBS}", MAX_JOBS)


def parse_seed_batch(text: str) -> int | str:
    """``--seed-batch`` value: how many seeds of a configuration train as one model, or ``auto`` (all of them)."""
    return _count_or_auto(text, "--seed-batch", "a positive number of seeds")


def _count_or_auto(text: str, option: str, meaning: str, high: int | None = None) -> int | str:
    """``auto``, or a whole number from 1 to ``high``; anything else is one line naming ``option``."""
    value = text.strip().lower()
    if value == AUTO:
        return AUTO
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1 or (high is not None and count > high):
        raise UsageError(f"{option} must be {meaning}, or 'auto', got {shorten(repr(text))}")
    return count


def seed_groups(config_ids: Sequence[str], size: int | str) -> list[list[int]]:
    """Indices of consecutive runs sharing a configuration, at most ``size`` per group (``auto``: no limit)."""
    limit = len(config_ids) if size == AUTO else int(size)
    groups: list[list[int]] = []
    for index, config_id in enumerate(config_ids):
        last = groups[-1] if groups else None
        if last is not None and config_ids[last[0]] == config_id and len(last) < limit:
            last.append(index)
        else:
            groups.append([index])
    return groups


def check_threads(threads: int) -> None:
    if not 1 <= threads <= MAX_THREADS:
        raise UsageError(f"--threads must be between 1 and {MAX_THREADS} (torch intra-op threads per run), "
                         f"got {threads}")


def physical_cores() -> int:
    """Physical CPU cores this process may run on: the CPUs in its affinity mask, less hyper-thread siblings."""
    import psutil

    try:
        logical = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        logical = psutil.cpu_count(logical=True) or 1
    threads_per_core = (psutil.cpu_count(logical=True) or 1) // (psutil.cpu_count(logical=False) or 1)
    return max(1, logical // max(1, threads_per_core))


def resolve_jobs(jobs: int | str, device: torch.device, runs: int, threads: int) -> int:
    """The number of worker processes: ``jobs`` itself, or for ``auto`` one per GPU on CUDA (one for an explicit
    ``cuda:N``), else physical cores // threads; capped by the runs to do, and at least 1."""
    if jobs != AUTO:
        return max(1, min(int(jobs), runs)) if runs else 1
    if device.type == "cuda":
        wanted = torch.cuda.device_count() if device.index is None else 1
    else:
        wanted = physical_cores() // threads
    return max(1, min(wanted, runs))


def worker_device(device: torch.device, worker: int) -> torch.device:
    """Worker ``i``'s device: GPU ``i mod count`` when the sweep asked for CUDA without an index, else the same."""
    if device.type == "cuda" and device.index is None and torch.cuda.device_count() > 1:
        return torch.device("cuda", worker % torch.cuda.device_count())
    return device


@contextmanager
def run_threads(threads: int) -> Iterator[None]:
    """Within the block torch uses ``threads`` intra-op threads and BLAS/OpenMP pools at most as many."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(threads):
            yield
    finally:
        torch.set_num_threads(before)
