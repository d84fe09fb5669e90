"""Robustness views of trained encoders on the evaluated split: a modality missing, or one modality's inputs noisy.

``missing_modality`` (tasks with 3+ modalities), for each modality L left out:

- ``retrieval[L]``: every remaining modality against the fusion of the other remaining ones, both directions, keyed
  like ``metrics.retrieval_multimodal`` (``"a+b->c"``; with two modalities left, the pair ``"a->b"``, ``"b->a"``);
  ``mean_R@1[L]`` is their mean R@1;
- ``linear:fused[L]`` (tasks with labels): the fused linear probe, fitted on train and scored on the evaluated
  split, with L left out of the fusion on both.

``noise``, for each modality m with floating-point inputs (vectors, images; token ids are skipped):
Gaussian noise of ``level`` times m's feature scale (the per-feature standard deviation over the train split) is
added to m's inputs, for each of ``levels``; ``R@1[m]`` is the cosine R@1 averaged over the directions involving m
(m against every other modality, both ways), one value per level, and ``mean_R@1`` their mean over the modalities.
One standard-normal draw per input, seeded with the run's seed, is scaled to every level, so the levels differ
only in scale. Level 0 is the plain metric: the unchanged embeddings, or the split's pairwise R@1 when given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pmrl_bench.evaluation.classification import probe_accuracies
from pmrl_bench.evaluation.embedding import EMBED_BATCH
from pmrl_bench.evaluation.multimodal import multimodal_retrieval
from pmrl_bench.evaluation.retrieval import pairwise_retrieval, recall_at_1_both_ways

NOISE_LEVELS = (0.0, 0.1, 0.5, 1.0)


def fusion_retrieval(
    embeddings: Mapping[str, torch.Tensor], pairwise: Mapping[str, Mapping[str, float]] | None = None
) -> dict[str, dict[str, float]]:
    """Each modality against the fusion of the others, both directions: ``multimodal_retrieval``'s views, and with
    two modalities the pair itself (the fusion of one modality is that modality), read from ``pairwise`` (the
    split's ``metrics.retrieval``) when given."""
    if len(embeddings) != 2:
        return multimodal_retrieval(embeddings)
    a, b = embeddings
    if pairwise is None:
        pairwise = pairwise_retrieval(embeddings)
    return {f"{b}->{a}": dict(pairwise[f"{b}->{a}"]), f"{a}->{b}": dict(pairwise[f"{a}->{b}"])}


def missing_modality(
    queries: Mapping[str, torch.Tensor],
    train: Mapping[str, torch.Tensor] | None = None,
    train_labels: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    seed: int = 0,
    backend: str = "torch",
    pairwise: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """Retrieval and the fused linear probe with each modality left out; empty with fewer than 3 modalities.
    ``backend``: the probes' (as ``classification.probe_accuracies``); ``pairwise``: the split's pairwise retrieval
    metrics, reused where two modalities remain."""
    names = list(queries)
    if len(names) < 3:
        return {}
    retrieval, mean_r1, probe = {}, {}, {}
    for left_out in names:
        kept = [m for m in names if m != left_out]
        retrieval[left_out] = fusion_retrieval({m: queries[m] for m in kept}, pairwise)
        mean_r1[left_out] = float(np.mean([scores["R@1"] for scores in retrieval[left_out].values()]))
        if train is not None and train_labels is not None and labels is not None:
            accuracies = probe_accuracies({m: train[m] for m in kept}, train_labels, {m: queries[m] for m in kept},
                                          labels, seed, backend=backend, only=("fused",), kinds=("linear",))
            probe[left_out] = accuracies["linear:fused"]
    out: dict[str, Any] = {"mean_R@1": mean_r1}
    if probe:
        out["linear:fused"] = probe
    out["retrieval"] = retrieval
    return out


@torch.no_grad()
def _noisy_embeddings(encoder: nn.Module, inputs: torch.Tensor, scale: torch.Tensor, levels: Sequence[float],
                      generator: torch.Generator, batch_size: int = EMBED_BATCH) -> list[torch.Tensor]:
    """Unit embeddings of ``inputs + level * scale * z`` for every level, with one standard-normal z per input."""
    chunks: list[list[torch.Tensor]] = [[] for _ in levels]
    for start in range(0, len(inputs), batch_size):
        x = inputs[start : start + batch_size]
        z = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device)  # CPU draw: same on any device
        for i, level in enumerate(levels):
            noisy = x + (level * scale * z).to(x.dtype)
            chunks[i].append(F.normalize(encoder(noisy).float(), dim=-1))
    return [torch.cat(c) for c in chunks]


def noisy_modality(
    encoders: nn.ModuleDict,
    inputs: Mapping[str, torch.Tensor],
    train_inputs: Mapping[str, Any],
    queries: Mapping[str, torch.Tensor],
    seed: int = 0,
    levels: Sequence[float] = NOISE_LEVELS,
    pairwise: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """Mean R@1 of the directions involving each modality, with noise added to that modality's inputs.
    ``pairwise``: the split's pairwise retrieval metrics, whose R@1 are level 0's, if already computed."""
    was_training = encoders.training
    encoders.eval()
    generator = torch.Generator().manual_seed(seed)
    r1: dict[str, list[float]] = {}
    try:
        for m, x in inputs.items():
            if not torch.is_floating_point(x):  # token ids: Gaussian noise has no meaning there
                continue
            std = np.asarray(train_inputs[m], dtype=np.float64).std(axis=0)
            scale = torch.as_tensor(std, dtype=torch.float32, device=x.device)
            others = [o for o in queries if o != m]
            r1[m] = []
            noisy_levels = [level for level in levels if level != 0]
            embedded = iter(_noisy_embeddings(encoders[m], x, scale, noisy_levels, generator))
            for level in levels:  # level 0 is the plain embedding itself, already computed
                if level == 0 and pairwise is not None:  # same rule, same scores: the plain R@1
                    values = [pairwise[d]["R@1"] for o in others for d in (f"{m}->{o}", f"{o}->{m}")]
                else:
                    noisy = queries[m] if level == 0 else next(embedded)
                    values = [r for o in others for r in recall_at_1_both_ways(noisy, queries[o])]
                r1[m].append(float(np.mean(values)))
    finally:
        encoders.train(was_training)
    if not r1:
        return {}
    mean = [float(np.mean([curve[i] for curve in r1.values()])) for i in range(len(levels))]
    return {"levels": [float(level) for level in levels], "R@1": r1, "mean_R@1": mean}


def robustness_views(
    encoders: nn.ModuleDict,
    inputs: Mapping[str, torch.Tensor],
    queries: Mapping[str, torch.Tensor],
    train_inputs: Mapping[str, Any],
    seed: int = 0,
    train: Mapping[str, torch.Tensor] | None = None,
    train_labels: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    backend: str = "torch",
    pairwise: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """``{"missing_modality": ..., "noise": ...}`` (a view left out where it does not apply).

    ``inputs`` and ``queries``: the evaluated split's inputs and their embeddings; ``train_inputs``: the train
    split's inputs (for the noise scale); ``train``/``train_labels``/``labels``: for the fused probe; ``pairwise``: the
    split's pairwise retrieval metrics, if already computed."""
    out = {}
    missing = missing_modality(queries, train, train_labels, labels, seed, backend, pairwise)
    if missing:
        out["missing_modality"] = missing
    noisy = noisy_modality(encoders, inputs, train_inputs, queries, seed, pairwise=pairwise)
    if noisy:
        out["noise"] = noisy
    return out
