"""The plugin contract (pmrl_bench.testing.ObjectiveContract) for triangle, centrobind, confu and a composite, at
the modality counts each supports, each with one training step through the real runner."""

from __future__ import annotations

from typing import Any, ClassVar

from pmrl_bench.testing import ObjectiveContract


class TestTriangle(ObjectiveContract):
    objective = "triangle"


class TestTriangleAreaFourModalities(ObjectiveContract):
    objective = "triangle"
    params: ClassVar[dict[str, Any]] = {"sqrt": True}
    modalities = 4


class TestTriangleSegment(ObjectiveContract):
    objective = "triangle"
    modalities = 2


class TestCentroBind(ObjectiveContract):
    objective = "centrobind"


class TestCentroBindLeaveOneOutTwoModalities(ObjectiveContract):
    objective = "centrobind"
    params: ClassVar[dict[str, Any]] = {"include_self": False, "detach_centroid": True}
    modalities = 2


class TestConFu(ObjectiveContract):
    objective = "confu"
    params: ClassVar[dict[str, Any]] = {"dim": 16}


class TestConFuFourModalities(ObjectiveContract):
    objective = "confu"
    params: ClassVar[dict[str, Any]] = {"dim": 16, "modalities": 4, "learnable": True}
    modalities = 4


class TestComposite(ObjectiveContract):
    objective = "infonce+0.1*pmrl"
