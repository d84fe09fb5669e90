"""CentroBind (Jeong, Namgung, Kim, Kang, Chiang, Hero; arXiv 2410.02086, "Anchors Aweigh! Sail for Optimal
Unified Multi-Modal Representations"): binding to an adaptive, centroid-based anchor instead of a fixed modality.

Each instance's anchor is the centroid of its modality embeddings, ``c_i = normalise(mean_m z_i^m)``, and every
modality is contrasted with the batch of centroids by CLIP's symmetric InfoNCE:
``loss = mean_m ½ (NCE(z^m → c) + NCE(c → z^m))``. No modality is privileged, so pairs of non-anchor modalities
are aligned through the shared centroid rather than left to emerge (as with ``anchor``).

No official code was found; the choices the paper leaves open:

* **normalised centroid**: the mean of unit vectors is shorter than 1 (by how much depends on the alignment), so
  it is renormalised to keep cosine logits on the scale of the other objectives. A centroid shorter than
  ``CENTROID_FLOOR`` (modalities that cancel out, e.g. z and −z) is divided by the floor instead, which bounds
  the gradient of the normalisation.
* **gradient through the centroid** (``detach_centroid=False``, default): the paper writes the loss as a function
  of all encoders and mentions no stop-gradient, so the centroid is differentiated too; ``detach_centroid=True``
  makes it a fixed target within each step (each modality is then pulled toward it, never the reverse).
* **the modality itself is in its centroid** (``include_self=True``, default, "generated from all available
  modalities"); ``include_self=False`` contrasts each modality with the centroid of the *others* (leave-one-out;
  with two modalities this is exactly pairwise InfoNCE).
* the k terms are **averaged** (as ``infonce`` averages pairs); one logit scale with open_clip conventions
  (learnable log scale clamped to [0, ln 100]; ``learnable=False`` fixes it); no label smoothing by default.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from pmrl_bench.builtins.objectives._common import (
    LogitScaleObjective,
    check_label_smoothing,
    clip_loss,
    loss_dtype,
    stack_modalities,
)
from pmrl_bench.components import ObjectiveOutput

# Centroids shorter than this are not scaled up to unit length (their direction is noise; 1/|c| would explode).
CENTROID_FLOOR = 1e-6


def centroids(embeddings: Mapping[str, torch.Tensor], include_self: bool = True) -> dict[str, torch.Tensor]:
    """The anchor of each modality: ``{m: (B, D) normalised centroid}``; the same tensor for every m unless
    ``include_self`` is False (then the centroid of the other modalities)."""
    E = stack_modalities(embeddings)  # (B, k, D)
    total = E.sum(1)
    k = E.shape[1]
    if include_self:
        shared = _normalise(total / k)
        return dict.fromkeys(embeddings, shared)
    return {m: _normalise((total - E[:, i]) / (k - 1)) for i, m in enumerate(embeddings)}


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(CENTROID_FLOOR)


class CentroBind(LogitScaleObjective):
    """CentroBind: every modality contrasted with the (normalised) centroid of its instance's modalities.

    Args:
        temperature: initial softmax temperature of the InfoNCE logits.
        learnable: learn the temperature (open_clip's clamped log scale); false fixes it.
        label_smoothing: label smoothing of the cross-entropies.
        detach_centroid: stop the gradient through the centroid (the paper names no stop-gradient).
        include_self: a modality is part of its own centroid (true), or contrasted with the others' only.
    """

    def __init__(
        self,
        temperature: float = 0.07,
        learnable: bool = True,
        label_smoothing: float = 0.0,
        detach_centroid: bool = False,
        include_self: bool = True,
    ) -> None:
        super().__init__(temperature, learnable)
        check_label_smoothing(label_smoothing)
        self.label_smoothing = float(label_smoothing)
        self.detach_centroid = bool(detach_centroid)
        self.include_self = bool(include_self)

    def forward(self, embeddings: Mapping[str, torch.Tensor]) -> ObjectiveOutput:
        anchors = centroids(embeddings, self.include_self)
        scale = self.logit_scale()
        dtype = loss_dtype(*embeddings.values())
        terms = {}
        for m, z in embeddings.items():
            c = anchors[m].detach() if self.detach_centroid else anchors[m]
            terms[f"{m}|centroid"] = clip_loss(z.to(dtype), c, scale, self.label_smoothing)
        return ObjectiveOutput(loss=torch.stack(list(terms.values())).mean(), terms=terms)
