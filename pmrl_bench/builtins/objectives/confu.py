"""ConFu (CVPR 2026, arXiv 2511.21331, github.com/estafons/confu): contrastive fusion for higher-order alignment.

Pairwise CLIP InfoNCE between the modalities, plus fused-pair terms: a small learned fusion f_ab maps the
concatenation ``[z_a ‖ z_b]`` of two modalities to the embedding space, and its (normalised) output is contrasted
with the remaining modality c by the same symmetric InfoNCE, so that a pair can retrieve the third (e.g. an XOR-like
dependency that no single modality carries). As the official ``pairwise_contrastive_loss``:

``loss = (λ Σ fused + (1 − λ) Σ pairwise) / (number of terms)`` (= /6 for three modalities), and for λ = 0 the
official branch that drops the fused terms, ``mean(pairwise)``.

The fusion (``ConFu.mod12_fusion_head`` and its siblings; the official ``MLP``): per unordered pair of modalities,
``layers − 1`` × (Linear → ReLU → Dropout), then Linear → LeakyReLU(0.2) → Dropout to ``dim``, then L2 normalisation;
``hidden`` 512 (``fusion_hidden_dim`` of every official script), ``layers`` 2, ``dropout`` 0.1, PyTorch's default
initialisation. Its parameters are parameters of this module, so the runner's optimiser trains them with the
encoders (without weight decay; the official code decays them with 1e-4).

Choices where the harness differs from the official code, and why:

* **fusion input**: the official heads read the encoders' features *before* their projection heads; an objective
  here only sees the L2-normalised embeddings, so the heads read those.
* **dim**: the fusion's output must live in the embedding space, so the module needs the embedding dimension when
  it is built: ``dim`` is supplied by the runner (the sweep's ``--dim``), as it is to encoders.
* **modalities**: one fusion head per pair needs the number of modalities when built: ``modalities`` (default 3,
  the paper's setting) must equal the task's (checked before training). With k > 3 every pair is fused and
  contrasted with each of the k − 2 others; with two modalities there is no third to retrieve, so k >= 3.
* **temperature**: fixed 0.07 as the official ``contrastive_loss`` (``learnable=True`` gives the open_clip
  learnable scale of the other built-ins); no label smoothing (``label_smoothing``).
* ``mask_ratio`` (input masking, 0 in every official script) is left out.

Native retrieval score: pair→third, ``f_ab(z_a, z_b) · z_c`` with the fusion in eval mode (no dropout), keyed
``"a+b->c"``; plain cosine stays the main retrieval metric.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pmrl_bench.builtins.objectives._common import (
    LogitScaleObjective,
    check_at_least,
    check_in_range,
    check_label_smoothing,
    clip_loss,
    loss_dtype,
)
from pmrl_bench.components import ObjectiveOutput

MAX_MODALITIES = 8
LEAKY_SLOPE = 0.2  # the official fusion MLP's output activation, LeakyReLU(0.2)
# Fused vectors shorter than this are not scaled up to unit length (bounds the normalisation's gradient).
NORM_FLOOR = 1e-6


class FusionMLP(nn.Module):
    """The official fusion head: ``[z_a ‖ z_b]`` (2·dim) → hidden (ReLU) … → dim (LeakyReLU), dropout after each."""

    def __init__(self, dim: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        widths = [2 * dim] + [hidden] * (layers - 1) + [dim]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.dropout = dropout

    def forward(self, a: torch.Tensor, b: torch.Tensor, training: bool) -> torch.Tensor:
        x = torch.cat([a, b], dim=-1).to(self.linears[0].weight.dtype)
        for index, linear in enumerate(self.linears):
            x = linear(x)
            x = F.relu(x) if index < len(self.linears) - 1 else F.leaky_relu(x, LEAKY_SLOPE)
            x = F.dropout(x, self.dropout, training=training)
        return x / x.norm(dim=-1, keepdim=True).clamp_min(NORM_FLOOR)


class ConFu(LogitScaleObjective):
    """ConFu: pairwise InfoNCE plus InfoNCE between a learned fusion of each pair and each remaining modality.

    Args:
        dim: embedding dimension of the fusion heads; set by the runner to --dim.
        modalities: the task's number of modalities (a fusion head per pair is built up front).
        fusion_weight: λ, the weight of the fused-pair terms against the pairwise ones (official lambda_).
        temperature: softmax temperature of the InfoNCE logits.
        learnable: learn the temperature; false (official) keeps it fixed.
        label_smoothing: label smoothing of the cross-entropies.
        hidden: width of the fusion MLP's hidden layers.
        layers: linear layers of each fusion MLP.
        dropout: dropout inside the fusion MLP (off at evaluation).
    """

    # What its `modalities` parameter may be; a built module accepts its own `modalities` only (set in __init__).
    accepted_modalities: tuple[int, ...] = tuple(range(3, MAX_MODALITIES + 1))

    def __init__(
        self,
        dim: int | None = None,
        modalities: int = 3,
        fusion_weight: float = 0.5,
        temperature: float = 0.07,
        learnable: bool = False,
        label_smoothing: float = 0.0,
        hidden: int = 512,
        layers: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(temperature, learnable)
        check_label_smoothing(label_smoothing)
        check_at_least(1, note="the embedding dimension; the runner passes --dim", dim=dim)
        check_in_range(3, MAX_MODALITIES, note="a fused pair is contrasted with a third", modalities=modalities)
        check_in_range(0.0, 1.0, note="λ, the weight of the fused-pair terms", fusion_weight=fusion_weight)
        check_at_least(1, hidden=hidden, layers=layers)
        check_in_range(0.0, 1.0, high_open=True, dropout=dropout)
        self.dim, self.modalities = int(dim), int(modalities)
        self.fusion_weight = float(fusion_weight)
        self.label_smoothing = float(label_smoothing)
        # Heads exist for this many modalities only: a task with another count is not applicable (modality_counts).
        self.accepted_modalities = (self.modalities,)
        self.pairs = list(itertools.combinations(range(self.modalities), 2))
        self.fusions = nn.ModuleList(FusionMLP(self.dim, hidden, layers, dropout) for _ in self.pairs)
        self.supports_seed_batch = dropout == 0  # dropout draws differently when seeds train as one model
        self._positions: dict[str, int] = {}  # the task's modality order, as forward / native_directions saw it

    def check_modalities(self, modalities: Sequence[str]) -> None:
        """Raise a usage error when the task's number of modalities is not the one the fusion heads were built for."""
        if len(modalities) != self.modalities:
            raise ValueError(
                f"confu was built for {self.modalities} modalities and the task has {len(modalities)} "
                f"({', '.join(modalities)}); set objective.confu.modalities={len(modalities)}"
                + (" (at least 3: a fused pair is contrasted with a third)" if len(modalities) < 3 else "")
            )
        self._positions = {m: i for i, m in enumerate(modalities)}

    def fuse(self, a: str, b: str, za: torch.Tensor, zb: torch.Tensor, training: bool = False) -> torch.Tensor:
        """The normalised fusion of modalities ``a`` and ``b`` (their task order decides the head and the input
        order)."""
        if a not in self._positions or b not in self._positions:
            raise ValueError(
                f"unknown modalities {a!r}, {b!r}: call forward or native_directions with the task's first"
            )
        (i, za), (j, zb) = sorted([(self._positions[a], za), (self._positions[b], zb)], key=lambda t: t[0])
        return self.fusions[self.pairs.index((i, j))](za, zb, training)

    def forward(self, embeddings: Mapping[str, torch.Tensor]) -> ObjectiveOutput:
        names = list(embeddings)
        self.check_modalities(names)
        dtype = loss_dtype(*embeddings.values())
        scale = self.logit_scale()
        z = [embeddings[m] for m in names]
        pairwise = {f"{names[i]}|{names[j]}": clip_loss(z[i], z[j], scale, self.label_smoothing) for i, j in self.pairs}
        if self.fusion_weight == 0.0:  # the official lambda_ == 0 branch: no fusion, mean of the pairwise terms
            return ObjectiveOutput(loss=torch.stack(list(pairwise.values())).mean(), terms=pairwise)
        fused = {}
        for head, (i, j) in zip(self.fusions, self.pairs):
            f = head(z[i], z[j], self.training).to(dtype)
            for c in range(len(names)):
                if c not in (i, j):
                    fused[f"{names[i]}+{names[j]}|{names[c]}"] = clip_loss(f, z[c], scale, self.label_smoothing)
        total = self.fusion_weight * torch.stack(list(fused.values())).sum()
        total = total + (1.0 - self.fusion_weight) * torch.stack(list(pairwise.values())).sum()
        return ObjectiveOutput(loss=total / (len(fused) + len(pairwise)), terms={**pairwise, **fused})

    def native_directions(self, modalities: Sequence[str]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """Each fused pair (query) retrieving each remaining modality."""
        self.check_modalities(modalities)
        names = list(modalities)
        return [
            ((names[i], names[j]), (names[c],)) for i, j in self.pairs for c in range(len(names)) if c not in (i, j)
        ]

    @torch.no_grad()
    def native_score(self, queries: Mapping[str, torch.Tensor], gallery: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Cosine between the fused query pair (eval mode) and the gallery modality: (Nq, Ng)."""
        if len(queries) != 2 or len(gallery) != 1:
            raise ValueError(f"the native score is pair -> third, got {list(queries)} -> {list(gallery)}")
        (a, za), (b, zb) = queries.items()
        (target,) = gallery.values()
        fused = self.fuse(a, b, za, zb, training=False)
        return fused.to(target.dtype) @ target.T
