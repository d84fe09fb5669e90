"""Helpers shared by the built-in objectives."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pmrl_bench.errors import UnknownNameError

# open_clip clamps the log logit scale to [0, ln 100] after every optimiser step: scale in [1, 100].
MAX_LOG_SCALE = math.log(100.0)


def stack_modalities(embeddings: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``(B, k, D)`` stack in the mapping's order (the task's modality order); float32 unless given float64.

    Row m of slice i is z_i^m, i.e. the slice is Z_iᵀ of the (D, k) matrix in the papers. This layout keeps
    D contiguous, so the batched k×k Gram products are fast.
    """
    check_at_least_two(embeddings)
    dtype = loss_dtype(*embeddings.values())
    return torch.stack([e.to(dtype) for e in embeddings.values()], dim=1)


def check_at_least_two(modalities: Sequence[str] | Mapping[str, object]) -> None:
    if len(modalities) < 2:
        raise ValueError(f"needs at least 2 modalities, got {len(modalities)}: {list(modalities)}")


def resolve_anchor(anchor: str | None, modalities: Sequence[str]) -> str:
    """The anchor modality: the named one, or the first of the task's modalities when ``anchor`` is None."""
    check_at_least_two(modalities)
    if anchor is None:
        return modalities[0]
    if anchor not in modalities:
        raise UnknownNameError("anchor modality", anchor, modalities)
    return anchor


def check_temperature(temperature: float, learnable: bool) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if learnable and not 0.01 <= temperature <= 1.0:
        raise ValueError(f"a learnable temperature must start in [0.01, 1] (open_clip's clamp), got {temperature}")


def check_label_smoothing(label_smoothing: float) -> None:
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")


class LogitScaleObjective(nn.Module):
    """Base of the contrastive objectives: open_clip's logit scale ``exp(log_scale)``.

    Learnable: an ``nn.Parameter`` initialised at ``ln(1/temperature)`` and clamped to [0, ln 100] after every
    optimiser step (exp-parametrised, so it can neither cross zero nor run away, docs/objectives.md, pitfall P11).
    Fixed (``learnable=False``): a buffer, nothing to optimise, no clamp.
    """

    def __init__(self, temperature: float, learnable: bool) -> None:
        super().__init__()
        check_temperature(temperature, learnable)
        log_scale = torch.tensor(math.log(1.0 / temperature))
        if learnable:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def logit_scale(self) -> torch.Tensor:
        return self.log_scale.float().exp()

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        if isinstance(self.log_scale, nn.Parameter):
            self.log_scale.clamp_(0.0, MAX_LOG_SCALE)


def symmetric_cross_entropy(logits: torch.Tensor, label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of rows and of columns of a (B, B) logit matrix toward its diagonal."""
    labels = torch.arange(len(logits), device=logits.device)
    rows = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    cols = F.cross_entropy(logits.T, labels, label_smoothing=label_smoothing)
    return rows, cols


def loss_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 when any input is float64, else float32: softmax never runs in half precision."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def clip_loss(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """CLIP's symmetric InfoNCE between two (B, D) batches whose row i is a positive pair (softmax in fp32+)."""
    dtype = loss_dtype(a, b)
    rows, cols = symmetric_cross_entropy(scale.to(dtype) * (a.to(dtype) @ b.to(dtype).T), label_smoothing)
    return 0.5 * (rows + cols)
