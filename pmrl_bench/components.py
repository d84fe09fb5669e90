"""The shapes of the three component kinds: objectives, encoders and tasks.

These are the types a plugin author writes against. Core code depends only on these protocols,
never on a particular objective, encoder or task.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # torch stays out of `pmrl-bench list` and `--help`
    import torch

# Modality kinds a task can declare. Encoders say which kinds they accept; plugins may add new kinds.
VECTOR, IMAGE, TEXT, AUDIO = "vector", "image", "text", "audio"


@dataclass(frozen=True)
class Modality:
    """One modality of a task: its name, its kind and the shape of one instance's input."""

    name: str
    kind: str
    shape: tuple[int, ...]
    # Extra facts an encoder may need (e.g. "vocab_size" for token ids).
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Split:
    """Instance-paired inputs: row i of every modality is the same instance."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))


@dataclass
class TaskData:
    """What a task hands the runner: its modalities (in a fixed order), a train, a test and optionally a
    validation split.

    ``validation`` serves model selection, tuning and the training monitors; when a task leaves it None, the runner
    carves one from train (``pmrl_bench.splits``). The test split is read by the final evaluation only.
    """

    modalities: list[Modality]
    train: Split
    test: Split
    # The number of classes of `labels`, when the task has labels.
    num_classes: int | None = None
    validation: Split | None = None
    # Rows the task dropped before splitting (e.g. rows with a missing value); results record it under `splits`.
    dropped: int = 0
    # Set by pmrl_bench.splits.with_validation: every split is in content order, so the row order a task read no
    # longer matters.
    content_ordered: bool = False


@runtime_checkable
class Task(Protocol):
    """A task is built as ``factory(**params)`` and loads its data on demand.

    The split is fixed by the task's own parameters (e.g. a ``seed`` parameter of the task), so every
    training seed of a sweep is evaluated on the same test instances. A task may return its own validation split;
    otherwise the runner carves one from train (``pmrl_bench.splits.with_validation``).

    Every task should also have ``card() -> pmrl_bench.cards.DataCard``: what the data is, where it comes from, its
    licence and citation, and its modalities, classes and split sizes (``pmrl-bench list tasks --params`` shows it;
    the task contract checks it against ``load()``).
    """

    def load(self) -> TaskData: ...


@dataclass
class ObjectiveOutput:
    """What an objective's forward returns: the scalar loss and the named terms that make it up."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


class Objective(Protocol):
    """An objective is a ``torch.nn.Module`` built as ``factory(**params)``.

    ``forward`` takes ``{modality: (B, D) L2-normalised float tensor}`` (row i of every modality is the
    same instance; the mapping is in the task's modality order) and returns an :class:`ObjectiveOutput`.

    Optional methods the runner uses when present:

    * ``after_optimizer_step()``: e.g. clamp a learnable logit scale (open_clip convention).
    * ``check_modalities(names)``: raise ``ValueError`` (or a ``UsageError``) when the objective cannot run on
      a task with these modalities (e.g. an unknown anchor name); called while planning, before any training.
    * ``accepted_modalities`` (a class or instance attribute, e.g. ``(3,)``): the numbers of modalities it accepts;
      a task with another count is reported as not applicable, not failed (``pmrl_bench.modality_counts``).
    * ``native_score(queries, gallery) -> (Nq, Ng) tensor``: a retrieval score of the objective's own
      (e.g. negative volume; higher = more similar), reported beside plain cosine as
      ``metrics["retrieval_native"]``. ``queries`` and ``gallery`` are mappings ``{modality: (N, D) tensor}``,
      so one side may be a tuple of modalities (GRAM: an anchor vs the other modalities of an instance).
    * ``native_directions(names) -> [(query modalities, gallery modalities), ...]``: the directions the native
      score is reported for, keyed ``"m0->m1+m2"``; default: every ordered pair of single modalities.
    * ``native_score_symmetric = True`` (an attribute): the reversed direction's score is the transpose of the
      direction's, so a direction and its reverse are ranked from one score matrix.
      See ``pmrl_bench.evaluation.native``.
    * ``supports_seed_batch = True`` (an attribute, see :func:`supports_seed_batch`).
    """

    def __call__(self, embeddings: Mapping[str, torch.Tensor]) -> ObjectiveOutput: ...


class EncoderFactory(Protocol):
    """An encoder is built as ``factory(modality=Modality, dim=int, **params)`` and returns a
    ``torch.nn.Module`` mapping a ``(B, *modality.shape)`` batch to ``(B, dim)`` features.
    The runner L2-normalises the output, so encoders need not. An encoder may declare
    ``supports_seed_batch = True`` (see :func:`supports_seed_batch`)."""

    def __call__(self, *, modality: Modality, dim: int, **params: Any) -> torch.nn.Module: ...


SEED_BATCH_ATTRIBUTE = "supports_seed_batch"


def supports_seed_batch(module: object) -> bool:
    """Whether a built objective or encoder may train with other seeds as one model (``run --seed-batch``).

    The runner then calls its ``forward`` under ``torch.func.vmap`` over parameters and buffers stacked along a
    new first dimension, one slice per seed. Declare ``supports_seed_batch = True`` (a class or instance
    attribute) only when that gives each seed exactly what its own forward would: no random draws (dropout > 0
    draws differently under vmap), no ``.item()`` or other host reads, no attributes or buffers written during
    ``forward``, and custom ``autograd.Function``s written with ``setup_context`` and ``generate_vmap_rule``.
    The contract checks in :mod:`pmrl_bench.testing` verify a declaration. Undeclared means sequential training.
    """
    return bool(getattr(module, SEED_BATCH_ATTRIBUTE, False))

