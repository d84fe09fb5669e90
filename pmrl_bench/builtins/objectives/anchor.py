"""Anchor binding (ImageBind, Girdhar et al. CVPR 2023; LanguageBind, Zhu et al. ICLR 2024).

Every non-anchor modality M is contrasted with the anchor A by CLIP's symmetric InfoNCE; pairs of non-anchor
modalities are never optimised directly, so their alignment is emergent (evaluate e.g. v->a separately).

Design choices (docs/objectives.md#anchor and #fair-comparison):
* ``anchor``: a modality name; None (default) means the task's first modality. An unknown name is bad input.
* one shared logit scale with open_clip conventions, as ``infonce`` (ImageBind fixes per-modality scales, e.g.
  20 for audio, and learns only text's; LanguageBind trains one modality at a time with CLIP's clamped scale);
* the k-1 anchor pairs are **averaged**, like ``infonce``'s pairs (``reduction="sum"`` adds them instead);
* the encoders are trained end to end: the "frozen anchor tower" of both papers is an encoder choice, not a loss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from pmrl_bench.builtins.objectives._common import (
    LogitScaleObjective,
    check_choice,
    check_label_smoothing,
    clip_loss,
    resolve_anchor,
)
from pmrl_bench.components import ObjectiveOutput

REDUCTIONS = ("mean", "sum")


class AnchorBinding(LogitScaleObjective):
    """Symmetric InfoNCE between one anchor modality and each other modality (ImageBind/LanguageBind).

    Args:
        anchor: the modality every other one is contrasted with; null: the task's first modality.
        temperature: the starting softmax temperature (logit scale 1/temperature).
        learnable: learn the logit scale, clamped to [1, 100]; false keeps 1/temperature.
        reduction: how the anchor pairs' losses combine: "mean" or "sum".
        label_smoothing: label smoothing of every cross-entropy, in [0, 1).
    """

    def __init__(
        self,
        anchor: str | None = None,
        temperature: float = 0.07,
        learnable: bool = True,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(temperature, learnable)
        check_choice(REDUCTIONS, reduction=reduction)
        check_label_smoothing(label_smoothing)
        self.anchor = anchor
        self.reduction = reduction
        self.label_smoothing = float(label_smoothing)

    def check_modalities(self, modalities: Sequence[str]) -> None:
        """Raise a usage error when the anchor is not one of the task's modalities."""
        resolve_anchor(self.anchor, list(modalities))

    def forward(self, embeddings: Mapping[str, torch.Tensor]) -> ObjectiveOutput:
        anchor = resolve_anchor(self.anchor, list(embeddings))
        scale = self.logit_scale()
        terms = {
            f"{anchor}|{m}": clip_loss(embeddings[anchor], z, scale, self.label_smoothing)
            for m, z in embeddings.items()
            if m != anchor
        }
        stacked = torch.stack(list(terms.values()))
        loss = stacked.mean() if self.reduction == "mean" else stacked.sum()
        return ObjectiveOutput(loss=loss, terms=terms)
