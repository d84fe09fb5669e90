"""Helpers shared by the built-in objectives."""

from __future__ import annotations

from collections.abc import Mapping

import torch


def stack_modalities(embeddings: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``(B, D, k)`` float32 stack in the mapping's order (the task's modality order)."""
    if len(embeddings) < 2:
        raise ValueError(f"needs at least 2 modalities, got {len(embeddings)}: {list(embeddings)}")
    return torch.stack([e.float() for e in embeddings.values()], dim=-1)
