"""Pairwise InfoNCE: CLIP's symmetric contrastive loss, averaged over every pair of modalities.

Design choices (docs/objectives.md#infonce and #fair-comparison):
* one logit scale shared by all pairs, open_clip conventions: learnable log scale initialised at
  ln(1/temperature), clamped to [0, ln 100] after every optimiser step; ``learnable=False`` fixes it;
* pairs are **averaged** (Symile's CLIP baseline sums them, which scales the learning rate with k(k-1)/2);
* no label smoothing by default (open_clip's ClipLoss); ``label_smoothing=0.1`` gives the VAST/GRAM ITC variant.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import torch

from pmrl_bench.builtins.objectives._common import (
    LogitScaleObjective,
    check_at_least_two,
    check_label_smoothing,
    clip_loss,
)
from pmrl_bench.components import ObjectiveOutput

__all__ = ["PairwiseInfoNCE", "clip_loss"]


class PairwiseInfoNCE(LogitScaleObjective):
    """Symmetric CLIP InfoNCE averaged over all modality pairs, one shared logit scale.

    Args:
        temperature: the starting softmax temperature (logit scale 1/temperature).
        learnable: learn the logit scale, clamped to [1, 100]; false keeps 1/temperature.
        label_smoothing: label smoothing of every cross-entropy, in [0, 1).
    """

    def __init__(self, temperature: float = 0.07, learnable: bool = True, label_smoothing: float = 0.0) -> None:
        super().__init__(temperature, learnable)
        check_label_smoothing(label_smoothing)
        self.label_smoothing = float(label_smoothing)

    def forward(self, embeddings: Mapping[str, torch.Tensor]) -> ObjectiveOutput:
        check_at_least_two(embeddings)
        scale = self.logit_scale()
        terms = {
            f"{m}|{n}": clip_loss(embeddings[m], embeddings[n], scale, self.label_smoothing)
            for m, n in itertools.combinations(embeddings, 2)
        }
        loss = torch.stack(list(terms.values())).mean()
        return ObjectiveOutput(loss=loss, terms=terms)
