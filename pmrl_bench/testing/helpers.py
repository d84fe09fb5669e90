"""The helper components the fixtures register (a tiny task and a reference objective), and the default
encoders of a task's modalities."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from pmrl_bench import hookimpl
from pmrl_bench import plugins as _plugins
from pmrl_bench.components import VECTOR, Modality, Split, TaskData
from pmrl_bench.registry import Registry

if TYPE_CHECKING:
    from torch import nn

# Names of the helper components the fixtures register; prefixed so they cannot clash with a real plugin.
TINY_TASK = "pmrl-testing-tiny"
REFERENCE_OBJECTIVE = "pmrl-testing-infonce"


class TinyTask:
    """Seeded vector modalities sharing a latent block, with labels: small enough for unit tests, not a benchmark.

    Args:
        modalities: number of vector modalities, named m0, m1, ...
        n_train: training instances.
        n_test: test instances.
        input_dim: features per modality.
        num_classes: classes of the label (argmax of a read-out of the shared block).
        seed: fixes the data and the split.
    """

    def __init__(
        self, modalities: int = 3, n_train: int = 64, n_test: int = 32, input_dim: int = 8,
        num_classes: int = 4, seed: int = 0,
    ) -> None:
        if modalities < 2 or min(n_train, n_test) < 2 or input_dim < 1 or num_classes < 2:
            raise ValueError("need modalities >= 2, n_train and n_test >= 2, input_dim >= 1, num_classes >= 2")
        self.modalities, self.n_train, self.n_test = modalities, n_train, n_test
        self.input_dim, self.num_classes, self.seed = input_dim, num_classes, seed

    def load(self) -> TaskData:
        rng = np.random.default_rng(self.seed)
        n = self.n_train + self.n_test
        shared = rng.standard_normal((n, 4))
        labels = np.argmax(shared @ rng.standard_normal((4, self.num_classes)), axis=1).astype(np.int64)
        names = [f"m{i}" for i in range(self.modalities)]
        inputs = {
            m: (shared @ rng.standard_normal((4, self.input_dim)) + 0.1 * rng.standard_normal((n, self.input_dim)))
            .astype(np.float32)
            for m in names
        }
        cut = self.n_train
        return TaskData(
            [Modality(m, VECTOR, (self.input_dim,)) for m in names],
            Split({m: x[:cut] for m, x in inputs.items()}, labels[:cut]),
            Split({m: x[cut:] for m, x in inputs.items()}, labels[cut:]),
            num_classes=self.num_classes,
        )


def reference_objective(temperature: float = 0.1) -> nn.Module:
    """Fixed-temperature symmetric InfoNCE over every modality pair: what the encoder and task contracts train with.

    Args:
        temperature: the fixed softmax temperature.
    """
    import itertools

    import torch
    import torch.nn.functional as F

    from pmrl_bench.components import ObjectiveOutput

    class PairwiseInfoNCE(torch.nn.Module):
        def forward(self, embeddings: Mapping[str, torch.Tensor]) -> ObjectiveOutput:
            terms = {}
            for a, b in itertools.combinations(embeddings, 2):
                logits = embeddings[a] @ embeddings[b].T / temperature
                labels = torch.arange(len(logits), device=logits.device)
                terms[f"{a}|{b}"] = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
            return ObjectiveOutput(torch.stack(list(terms.values())).mean(), terms)

    return PairwiseInfoNCE()


class _HelperComponents:
    """The in-process plugin behind :data:`TINY_TASK` and :data:`REFERENCE_OBJECTIVE`."""

    @hookimpl
    def register_tasks(self, register: Any) -> None:
        register(TINY_TASK, TinyTask, description="pmrl_bench.testing: tiny seeded vector task")

    @hookimpl
    def register_objectives(self, register: Any) -> None:
        register(REFERENCE_OBJECTIVE, reference_objective, description="pmrl_bench.testing: pairwise InfoNCE")


HELPER_PLUGIN_NAME = "pmrl_bench.testing"


def ensure_helpers(manager: _plugins.PluginManager) -> Registry:
    """Register :data:`TINY_TASK` and :data:`REFERENCE_OBJECTIVE` on ``manager`` (once) and return its registry."""
    if not manager.pm.has_plugin(HELPER_PLUGIN_NAME):
        manager.register_plugin(_HelperComponents(), name=HELPER_PLUGIN_NAME)
    return manager.registry


def default_encoders(registry: Registry, data: TaskData, dim: int = 16, seed: int = 0) -> nn.ModuleDict:
    """The default encoder for each modality's kind, built as the runner builds it."""
    import torch

    torch.manual_seed(seed)
    return torch.nn.ModuleDict(
        {m.name: registry.default_encoder_for(m.kind).create(modality=m, dim=dim) for m in data.modalities}
    )

