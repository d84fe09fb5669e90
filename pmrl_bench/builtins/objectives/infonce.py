"""Pairwise InfoNCE: CLIP's symmetric contrastive loss, averaged over every pair of modalities.

Temperature follows open_clip: a learnable log logit scale initialised at ln(1/temperature) and clamped
to [0, ln 100] after every optimiser step; ``learnable=False`` keeps the temperature fixed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from pmrl_bench.components import ObjectiveOutput

MAX_LOG_SCALE = math.log(100.0)


def clip_loss(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE between two (B, D) batches whose row i is a positive pair."""
    logits = scale * a.float() @ b.float().T
    labels = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


class PairwiseInfoNCE(nn.Module):
    """Symmetric CLIP InfoNCE averaged over all modality pairs, one shared logit scale."""

    def __init__(self, temperature: float = 0.07, learnable: bool = True) -> None:
        super().__init__()
        if not 0.01 <= temperature <= 1.0:
            raise ValueError(f"temperature must be in [0.01, 1] (open_clip's clamp), got {temperature}")
        log_scale = torch.tensor(math.log(1.0 / temperature))
        if learnable:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def forward(self, embeddings: Mapping[str, torch.Tensor]) -> ObjectiveOutput:
        if len(embeddings) < 2:
            raise ValueError(f"needs at least 2 modalities, got {list(embeddings)}")
        scale = self.log_scale.exp()
        terms = {
            f"{m}|{n}": clip_loss(embeddings[m], embeddings[n], scale)
            for m, n in itertools.combinations(embeddings, 2)
        }
        loss = torch.stack(list(terms.values())).mean()
        return ObjectiveOutput(loss=loss, terms=terms)

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        self.log_scale.clamp_(0.0, MAX_LOG_SCALE)
