"""Encoder checkpoints in safetensors (never pickle): written atomically, identified by a hash of their tensors.

A checkpoint holds the state of the encoders of one task, keyed ``<modality>.<parameter>`` (the runner's
``nn.ModuleDict`` of encoders), e.g. ``m0.net.1.weight``. The warm-start stage writes one per (task, encoders, init
objective and parameters, init budget, seed, data); ``--init-checkpoint PATH`` reads the user's own.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pmrl_bench.errors import UsageError
from pmrl_bench.fsutil import atomic_write

if TYPE_CHECKING:
    import torch
    from torch import nn

    from pmrl_bench.components import TaskData
    from pmrl_bench.registry import Registry
    from pmrl_bench.runner.spec import EncoderChoice

SUFFIX = ".safetensors"
# Larger files are not read: encoders of this harness are megabytes; this stops a mistaken path to a huge file.
MAX_BYTES = 4 * 1024**3


def encoder_state(encoders: nn.Module) -> dict[str, torch.Tensor]:
    """The encoders' state as contiguous CPU tensors (a snapshot: later training does not change it)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in encoders.state_dict().items()}


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the tensors themselves (names, dtypes, shapes, bytes): two files with the same weights and
    different metadata have the same hash, and any changed weight changes it."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def write(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Atomically write ``state`` (temporary file in the same directory, fsync, rename)."""
    from safetensors.torch import save

    atomic_write(path, save(state, metadata=metadata))


def read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(state, metadata)`` of a safetensors file; anything else is one line of bad input."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    where = f"--init-checkpoint {str(path)!r}"
    if not path.exists():
        raise UsageError(f"{where}: no such file; give a safetensors file of encoder weights")
    if not path.is_file():
        raise UsageError(f"{where}: not a regular file; give a safetensors file of encoder weights")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise UsageError(f"{where}: {size} bytes is larger than any encoder checkpoint this harness reads "
                         f"({MAX_BYTES} bytes)")
    try:
        data = path.read_bytes()
        state = load(data)
        metadata = _metadata(data)
    except (SafetensorError, ValueError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"{where}: not a readable safetensors file ({first}); checkpoints are safetensors, "
                         "never pickles") from None
    _check_finite(state, where)
    return state, metadata


def _check_finite(state: dict[str, torch.Tensor], where: str) -> None:
    """Every floating-point weight finite: a NaN or inf would make every run that starts from it diverge, which the
    result files would then charge to the objective."""
    import torch

    for key in sorted(state):
        tensor = state[key]
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise UsageError(f"{where}: tensor {key!r} holds {bad} non-finite value(s) (NaN or inf) of "
                                 f"{tensor.numel()}; give finite encoder weights")


def _metadata(data: bytes) -> dict[str, str]:
    header_length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_length])
    metadata = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in metadata.items()}


def encoder_shapes(registry: Registry, data: TaskData, encoders: dict[str, EncoderChoice],
                   dim: int) -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` of the encoders a run of this task builds (what a checkpoint must hold); see
    :func:`encoder_layout` for the dtypes too."""
    return {key: shape for key, (shape, _) in encoder_layout(registry, data, encoders, dim).items()}


def encoder_layout(registry: Registry, data: TaskData, encoders: dict[str, EncoderChoice],
                   dim: int) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """``{key: (shape, dtype)}`` of the encoders a run of this task builds."""
    from torch import nn

    modules = nn.ModuleDict({
        m.name: registry.get("encoder", encoders[m.name].name).create(modality=m, dim=dim, **encoders[m.name].params)
        for m in data.modalities
    })
    return {k: (tuple(v.shape), v.dtype) for k, v in modules.state_dict().items()}


def check_fits(state: dict[str, Any], expected: dict[str, tuple[int, ...]], path: Path | str, task: str,
               dtypes: dict[str, torch.dtype] | None = None) -> None:
    """One line naming the first missing, extra or mis-shaped key when ``state`` does not fit the encoders; with
    ``dtypes`` (the encoders' own), also the first integer, boolean or complex tensor where the encoder holds
    floating-point weights (loading would silently round them, to zeros for small weights)."""
    where = f"--init-checkpoint {str(path)!r} does not fit the encoders of task {task!r}"
    for key in sorted(expected):
        if key not in state:
            raise UsageError(f"{where}: missing key {key!r} (shape {list(expected[key])})")
    for key in sorted(state):
        if key not in expected:
            raise UsageError(f"{where}: unexpected key {key!r}; the encoders have {_sample(expected)}")
    for key in sorted(expected):
        if tuple(state[key].shape) != expected[key]:
            raise UsageError(f"{where}: key {key!r} has shape {list(state[key].shape)}, the encoder expects "
                             f"{list(expected[key])}")
    for key in sorted(dtypes or {}):
        wanted, given = dtypes[key], state[key].dtype  # type: ignore[index]
        if wanted.is_floating_point and not given.is_floating_point:
            raise UsageError(f"{where}: key {key!r} is {str(given).removeprefix('torch.')}, the encoder's weights "
                             f"are {str(wanted).removeprefix('torch.')}; give floating-point weights")


def _sample(expected: dict[str, Any]) -> str:
    keys = sorted(expected)
    shown = ", ".join(repr(k) for k in keys[:4])
    return f"{shown}{', ...' if len(keys) > 4 else ''} ({len(keys)} keys)"
