"""Multi-modal queries: each modality against the fusion of all the others, in both directions.

Pairwise directions (``evaluation.retrieval``) cannot see information that only several modalities carry
jointly; these directions can, when the fused embedding represents it. The fusion is the normalised mean of
the other modalities' unit embeddings, the same fusion the classification probes use. Keys are
``"a+b->c"`` (the fusion of a and b queries the gallery of c) and ``"c->a+b"``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from pmrl_bench.evaluation.classification import fuse
from pmrl_bench.evaluation.retrieval import ScoreFn, cosine_scores, recall_metrics, retrieval_ranks_both_ways


def fusion_name(names: list[str]) -> str:
    return "+".join(names)


def multimodal_retrieval(
    embeddings: Mapping[str, torch.Tensor], score: ScoreFn = cosine_scores
) -> dict[str, dict[str, float]]:
    """``{"a+b->c": {...}, "c->a+b": {...}}`` for every modality c; empty with fewer than 3 modalities
    (with two, "the others" is one modality and the pairwise directions already cover it)."""
    names = list(embeddings)
    if len(names) < 3:
        return {}
    out = {}
    for target in names:
        others = [m for m in names if m != target]
        fused = fuse({m: embeddings[m] for m in others})
        key = fusion_name(others)
        forward, backward = retrieval_ranks_both_ways(fused, embeddings[target], score)
        out[f"{key}->{target}"] = recall_metrics(forward)
        out[f"{target}->{key}"] = recall_metrics(backward)
    return out
