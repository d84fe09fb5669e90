"""The evaluation of one set of encoders on one split: every view a result file's ``metrics`` holds.

The runner calls it on the test split once training is over (for the final state, with the robustness views, and
for the state the run started from), and on the validation split for tuning. Nothing else reads the test split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from pmrl_bench.components import Split, TaskData
from pmrl_bench.evaluation.classification import probe_accuracies
from pmrl_bench.evaluation.embedding import embed, split_tensors
from pmrl_bench.evaluation.multimodal import multimodal_retrieval
from pmrl_bench.evaluation.native import native_ranks
from pmrl_bench.evaluation.per_query import PER_QUERY_KEY, encode_ranks
from pmrl_bench.evaluation.retrieval import pairwise_ranks, recall_metrics
from pmrl_bench.evaluation.robustness import robustness_views


def evaluate(
    encoders: nn.ModuleDict,
    objective: nn.Module | None,
    data: TaskData,
    device: torch.device,
    seed: int,
    split: str = "test",
    probe: str = "torch",
    probe_views: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Retrieval (cosine, multimodal, native), per-query ranks and classification probes on ``split``.

    The probes are fitted on the train split and scored on ``split`` (``"test"`` or ``"validation"``);
    ``probe_views`` limits them (e.g. ``("fused",)``). ``objective=None`` leaves out ``retrieval_native``, the
    only view that depends on the objective.
    """
    return evaluate_with_robustness(encoders, objective, data, device, seed, split, probe, robustness=False,
                                    probe_views=probe_views)[0]


def evaluate_with_robustness(
    encoders: nn.ModuleDict,
    objective: nn.Module | None,
    data: TaskData,
    device: torch.device,
    seed: int,
    split: str = "test",
    probe: str = "torch",
    robustness: bool = True,
    probe_views: Sequence[str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(metrics, robustness)``: :func:`evaluate`'s metrics and, on the same embeddings, the robustness views of
    ``evaluation.robustness`` (missing modality, noisy modality) on ``split``; ``{}`` when ``robustness`` is False."""
    names = [m.name for m in data.modalities]
    target: Split | None = getattr(data, split)
    if target is None:
        raise ValueError(f"task data has no {split} split")
    inputs = split_tensors(target, names, device)
    queries = embed(encoders, inputs)
    # Each direction's ranks are computed once: they give both R@K/MdR and the per-query ranks, which let
    # leaderboards bootstrap confidence intervals over test queries and pair configurations.
    ranks = pairwise_ranks(queries)
    metrics: dict[str, Any] = {"retrieval": {direction: recall_metrics(r) for direction, r in ranks.items()}}
    fused = multimodal_retrieval(queries)  # one modality vs the fusion of the others (3+ modalities)
    if fused:
        metrics["retrieval_multimodal"] = fused
    metrics[PER_QUERY_KEY] = {"retrieval": {direction: encode_ranks(r) for direction, r in ranks.items()}}
    add_native_retrieval(metrics, objective, queries)
    train = None
    labelled = data.train.labels is not None and target.labels is not None
    if labelled:
        train = embed(encoders, split_tensors(data.train, names, device))
        metrics["classification"] = probe_accuracies(train, data.train.labels, queries, target.labels, seed,
                                                     backend=probe, only=probe_views)
    views: dict[str, Any] = {}
    if robustness:
        views = robustness_views(encoders, inputs, queries, data.train.inputs, seed, train,
                                 data.train.labels if labelled else None, target.labels if labelled else None,
                                 backend=probe, pairwise=metrics["retrieval"])
    return metrics, views


def has_native_score(objective: nn.Module | None) -> bool:
    """Whether ``objective`` ranks by a score of its own (``native_score``), so its evaluation has a
    ``retrieval_native`` view; every other view depends on the encoders alone."""
    return callable(getattr(objective, "native_score", None))


def add_native_retrieval(
    metrics: dict[str, Any], objective: nn.Module | None, queries: Mapping[str, torch.Tensor]
) -> None:
    """Add ``retrieval_native`` (and its per-query ranks) to ``metrics``: retrieval by the objective's own score
    (e.g. -volume) on the split's embeddings ``queries``; nothing when it has none."""
    native = native_ranks(objective, queries)
    if native is None:
        return
    metrics["retrieval_native"] = {direction: recall_metrics(r) for direction, r in native.items()}
    per_query = metrics.setdefault(PER_QUERY_KEY, {})
    per_query["retrieval_native"] = {direction: encode_ranks(r) for direction, r in native.items()}


def evaluate_native(
    metrics: dict[str, Any], encoders: nn.ModuleDict, objective: nn.Module | None, data: TaskData,
    device: torch.device, split: str = "test",
) -> dict[str, Any]:
    """``metrics`` (computed without the objective, e.g. shared by several runs) with the objective's
    ``retrieval_native`` view on ``split`` added, as :func:`evaluate` would have; unchanged when it has none."""
    if has_native_score(objective):
        names = [m.name for m in data.modalities]
        add_native_retrieval(metrics, objective, embed(encoders, split_tensors(getattr(data, split), names, device)))
    return metrics

