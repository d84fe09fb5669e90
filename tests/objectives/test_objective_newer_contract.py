"""The plugin contract (pmrl_bench.testing.ObjectiveContract) for triangle, centrobind, confu and a composite, at
the modality counts each supports, each with one training step through the real runner.

The registered ``triangle`` accepts three modalities (a triangle's vertices); its class generalises to the simplex
of 2 to 8 points, checked here through a plugin that registers the class for those counts."""

from __future__ import annotations

from typing import Any, ClassVar

from pmrl_bench import hookimpl
from pmrl_bench.testing import ObjectiveContract


class _Simplex:
    @hookimpl
    def register_objectives(self, register):
        register("triangle-simplex", "pmrl_bench.builtins.objectives.triangle:TriangleLoss", modalities=range(2, 9))


class TestTriangle(ObjectiveContract):
    objective = "triangle"


class TestTriangleAreaFourModalities(ObjectiveContract):
    plugin = _Simplex()
    objective = "triangle-simplex"
    params: ClassVar[dict[str, Any]] = {"sqrt": True}
    modalities = 4


class TestTriangleSegment(ObjectiveContract):
    plugin = _Simplex()
    objective = "triangle-simplex"
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
