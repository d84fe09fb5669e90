"""Anchor-versus-tuple objectives: contrast a measure of the figure spanned by an anchor and a tuple (GRAM, TRIANGLE).

Both score the anchor a_i of instance i against the tuple of the other modalities of instance j by a measure
``M_ij`` of the figure they span: GRAM the volume of the parallelotope spanned from the origin (``gram.py``),
TRIANGLE the area of the triangle, or the volume of the simplex, spanned from the anchor's tip (``triangle.py``).
Small means aligned, so the logits are ``-M/τ`` and ``loss = ½ (a2d + d2a)``: anchor→data (rows of the (B, B)
matrix toward the diagonal) and data→anchor (columns). Everything but the measure is shared, and lives here:

* ``anchor``: a modality name, default None = the task's first modality; at most ``MAX_MODALITIES`` modalities
  (cofactor determinants of at most 7×7);
* the temperature uses the open_clip convention of every built-in contrastive objective (learnable log scale,
  clamped to [0, ln 100]), where both official codes learn a raw τ that can cross zero (docs/objectives.md,
  pitfall P11); ``learnable=False`` fixes it;
* ``label_smoothing`` of both cross-entropies defaults to the official 0.1 of both codes;
* ``precision``: the dtype of the measure, "float64" (default: exact near collinearity) or "float32" (faster). The
  measure is computed outside autocast, and ``negative_det_fraction`` (a 0-dim tensor, left on the device so that
  no step waits for the GPU) holds the fraction of determinants that rounding made negative (and that were
  clamped) in the last forward;
* the native retrieval score ``-M`` between the anchor and the tuple of the others, both directions, ranked from
  one matrix (:class:`AnchorTupleScore`, shared with the ``volume`` ablation).

A subclass supplies the measure, ``_measure(anchor, others) -> (M, negative)``, and documents its parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import torch

from pmrl_bench.builtins.objectives._common import (
    LogitScaleObjective,
    check_choice,
    check_label_smoothing,
    loss_dtype,
    resolve_anchor,
    symmetric_cross_entropy,
)
from pmrl_bench.builtins.objectives._linalg import MAX_COFACTOR_SIZE
from pmrl_bench.components import ObjectiveOutput

PRECISIONS = {"float64": torch.float64, "float32": torch.float32}
MAX_MODALITIES = MAX_COFACTOR_SIZE + 1

Directions = list[tuple[tuple[str, ...], tuple[str, ...]]]


class AnchorTupleScore:
    """Native retrieval score ``-M`` between one modality (the anchor side) and a tuple of the others.

    The subclass supplies ``_measure``: the volume, the area, or any measure that does not depend on the order of
    the tuple's modalities.
    """

    native_score_symmetric = True  # tuple -> anchor is anchor -> tuple transposed: one matrix ranks both

    @torch.no_grad()
    def native_score(self, queries: Mapping[str, torch.Tensor], gallery: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``-M`` (Nq, Ng) between the single-modality (anchor) side and the tuple side, whichever is the query.

        The volume and the area do not depend on the order of the tuple's modalities, and for k = 2 they are
        symmetric.
        """
        if len(queries) == 1:
            return -self._score_measure(next(iter(queries.values())), gallery)
        if len(gallery) == 1:
            return -self._score_measure(next(iter(gallery.values())), queries).T
        raise ValueError(f"one side must be the anchor alone, got {list(queries)} -> {list(gallery)}")

    def _score_measure(self, anchor: torch.Tensor, tuples: Mapping[str, torch.Tensor]) -> torch.Tensor:
        with torch.autocast(device_type=anchor.device.type, enabled=False):
            M, _ = self._measure(anchor, list(tuples.values()))
        return M

    def _measure(self, anchor: torch.Tensor, others: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(M, negative)``: the measure (Nq, Ng) of anchors (Nq, D) with tuples [(Ng, D), ...], and the boolean
        mask of the determinants that came out < 0 (rounding) and were clamped."""
        raise NotImplementedError(f"{type(self).__name__} must define _measure")


class AnchorTupleObjective(AnchorTupleScore, LogitScaleObjective):
    """Base of GRAM and TRIANGLE: contrast the measure of the anchor of instance i with the others of instance j.

    A subclass defines ``_measure`` and ``label`` (its name in messages); it documents its parameters in its own
    docstring (``pmrl-bench list objectives --params`` reads the factory's). The defaults follow both official
    codes, except the anchor (theirs: text) and the form of the temperature (module docstring).
    """

    supports_seed_batch = False  # forward writes negative_det_fraction, which vmap cannot carry out

    label: ClassVar[str] = "anchor-tuple"
    # The modality counts the runner may hand it (pmrl_bench.modality_counts): cofactor determinants of at most 7x7.
    accepted_modalities: ClassVar[range] = range(2, MAX_MODALITIES + 1)
    # The order of the terms in ObjectiveOutput.terms (and so in the logs); the loss does not depend on it.
    term_order: ClassVar[tuple[str, str]] = ("a2d", "d2a")

    def __init__(
        self,
        anchor: str | None = None,
        temperature: float = 0.07,
        learnable: bool = True,
        label_smoothing: float = 0.1,
        precision: str = "float64",
    ) -> None:
        super().__init__(temperature, learnable)
        check_label_smoothing(label_smoothing)
        check_choice(PRECISIONS, precision=precision)
        self.anchor = anchor
        self.label_smoothing = float(label_smoothing)
        self.precision = precision
        self.negative_det_fraction = torch.zeros(())  # of the last forward; 0 in exact arithmetic

    @property
    def measure_dtype(self) -> torch.dtype:
        """The dtype the measure is computed in (``precision``)."""
        return PRECISIONS[self.precision]

    def check_modalities(self, modalities: Sequence[str]) -> None:
        """Raise a usage error when the anchor is not one of the task's modalities, or there are too many."""
        resolve_anchor(self.anchor, list(modalities))
        if len(modalities) > MAX_MODALITIES:
            raise ValueError(f"{self.label} supports up to {MAX_MODALITIES} modalities, got {len(modalities)}")

    def _split(self, modalities: Sequence[str]) -> tuple[str, list[str]]:
        anchor = resolve_anchor(self.anchor, list(modalities))
        return anchor, [m for m in modalities if m != anchor]

    def measures(self, embeddings: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, B) measures: row i = anchor of instance i, column j = the other modalities of instance j."""
        anchor, others = self._split(list(embeddings))
        with torch.autocast(device_type=embeddings[anchor].device.type, enabled=False):
            M, negative = self._measure(embeddings[anchor], [embeddings[m] for m in others])
        self.negative_det_fraction = negative.float().mean()  # no float(): no host sync per step
        return M

    def forward(self, embeddings: Mapping[str, torch.Tensor]) -> ObjectiveOutput:
        M = self.measures(embeddings)
        dtype = loss_dtype(*embeddings.values())
        logits = -M.to(dtype) * self.logit_scale().to(dtype)
        a2d, d2a = symmetric_cross_entropy(logits, self.label_smoothing)
        terms = {"a2d": a2d, "d2a": d2a}
        return ObjectiveOutput(loss=0.5 * (a2d + d2a), terms={name: terms[name] for name in self.term_order})

    def native_directions(self, modalities: Sequence[str]) -> Directions:
        """Anchor against the tuple of the others, and back."""
        anchor, others = self._split(modalities)
        return [((anchor,), tuple(others)), (tuple(others), (anchor,))]
