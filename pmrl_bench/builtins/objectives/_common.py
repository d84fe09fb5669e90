"""Helpers shared by the built-in objectives."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

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


def check_positive(*, note: str = "", **values: float | None) -> None:
    """Raise ``ValueError`` unless every value is > 0: ``"tau1 and tau2 must be > 0, got tau1=-1.0, tau2=0.1"``."""
    _check_values(values, lambda value: value > 0, "> 0", note)


def check_at_least(low: float, /, *, note: str = "", **values: float | None) -> None:
    """Raise ``ValueError`` unless every value is >= ``low``: ``"grad_guard must be >= 0 (note), got -1"``."""
    _check_values(values, lambda value: value >= low, f">= {low:g}", note)


def check_in_range(
    low: float, high: float, /, *, high_open: bool = False, note: str = "", **values: float | None
) -> None:
    """Raise ``ValueError`` unless every value is in [low, high] (``high_open``: [low, high)).

    The message reads ``"label_smoothing must be in [0, 1), got 1.0"``.
    """
    if high_open:
        _check_values(values, lambda value: low <= value < high, f"in [{low:g}, {high:g})", note)
    else:
        _check_values(values, lambda value: low <= value <= high, f"in [{low:g}, {high:g}]", note)


def check_choice(choices: Collection[str], /, **values: str) -> None:
    """Raise ``ValueError`` unless every value is one of ``choices``: ``"precision must be one of a, b, got 'c'"``."""
    _check_values(values, lambda value: value in choices, f"one of {', '.join(choices)}", "", show=repr)


def _check_values(
    values: Mapping[str, Any],
    valid: Callable[[Any], bool],
    valid_range: str,
    note: str,
    show: Callable[[Any], str] = str,
) -> None:
    """The one parameter check of the built-in objectives: a one-line ``ValueError`` naming the parameters and
    the valid range when any value is None or out of range (NaN included: every comparison with NaN is false).

    One value: ``"<name> must be <range> (<note>), got <value>"``; several, checked together:
    ``"<a> and <b> must be <range>, got a=<value>, b=<value>"``. The checks take the values as keywords (named as
    the parameters) after positional-only bounds, so only their options, ``note`` and ``high_open``, are not
    available as parameter names.
    """
    if all(value is not None and valid(value) for value in values.values()):
        return
    names = " and ".join(values)
    if len(values) == 1:
        got = show(next(iter(values.values())))
    else:
        got = ", ".join(f"{name}={show(value)}" for name, value in values.items())
    suffix = f" ({note})" if note else ""
    raise ValueError(f"{names} must be {valid_range}{suffix}, got {got}")


def check_temperature(temperature: float, learnable: bool) -> None:
    """A temperature > 0; a learnable one must start within open_clip's clamp, [0.01, 1]."""
    check_positive(temperature=temperature)
    if learnable:
        check_in_range(0.01, 1.0, note="a learnable one must start within open_clip's clamp", temperature=temperature)


def check_label_smoothing(label_smoothing: float) -> None:
    """Label smoothing in [0, 1)."""
    check_in_range(0.0, 1.0, high_open=True, label_smoothing=label_smoothing)


class LogitScaleObjective(nn.Module):
    """Base of the contrastive objectives: open_clip's logit scale ``exp(log_scale)``.

    Learnable: an ``nn.Parameter`` initialised at ``ln(1/temperature)`` and clamped to [0, ln 100] after every
    optimiser step (exp-parametrised, so it can neither cross zero nor run away, docs/objectives.md, pitfall P11).
    Fixed (``learnable=False``): a buffer, nothing to optimise, no clamp.
    """

    supports_seed_batch = True  # subclasses that draw random numbers or write attributes in forward say False

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
