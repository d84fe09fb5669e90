"""The encoder contract: output shape, finiteness, gradients, determinism and batch independence, as a check
function and as a test class to subclass."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from pmrl_bench.components import TaskData
from pmrl_bench.errors import UsageError
from pmrl_bench.registry import Component
from pmrl_bench.testing.common import (
    ContractViolation,
    check_parameters,
    component_label,
    contract_component,
    create_checked,
)
from pmrl_bench.testing.helpers import TINY_TASK
from pmrl_bench.testing.runner import run_one_step
from pmrl_bench.testing.task import load_task_data


def check_encoder(
    component: Component, data: TaskData, params: Mapping[str, Any] | None = None, *, dim: int = 16,
    batch: int = 8, seed: int = 0,
) -> list[str]:
    """Output shape, finiteness, gradients, determinism and batch independence on every modality of ``data``
    whose kind the encoder accepts. Returns the modalities checked."""
    import torch
    import torch.nn.functional as F

    from pmrl_bench.runner.train import seed_everything

    kinds = tuple(component.metadata.get("modality_kinds", ()))
    modalities = [m for m in data.modalities if not kinds or m.kind in kinds]
    if not modalities:
        raise ContractViolation(
            f"{component_label(component)}: accepts {', '.join(kinds)} modalities and the task has none "
            f"({', '.join(f'{m.name}: {m.kind}' for m in data.modalities)}); check it on a task with such a modality"
        )
    for modality in modalities:
        x = torch.as_tensor(np.asarray(data.train.inputs[modality.name][:batch]))
        where = f"{component_label(component)} on modality {modality.name!r} ({modality.kind}, shape {modality.shape})"
        outputs = []
        for _ in range(2):
            seed_everything(seed)
            encoder = create_checked(component, params or {}, modality=modality, dim=dim)
            if not isinstance(encoder, torch.nn.Module):
                raise ContractViolation(f"{where}: the factory returned {type(encoder).__name__}, "
                                        "not a torch.nn.Module")
            encoder.train()
            try:
                out = encoder(x)
            except Exception as exc:
                raise ContractViolation(
                    f"{where}: forward on a batch of shape {tuple(x.shape)} raised {type(exc).__name__}: {exc}"
                ) from exc
            outputs.append((encoder, out))
        (encoder, out), (_, out_again) = outputs
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(x), dim) or not out.is_floating_point():
            shown = (f"shape {tuple(out.shape)}, dtype {out.dtype}" if isinstance(out, torch.Tensor)
                     else type(out).__name__)
            raise ContractViolation(
                f"{where}: a batch of {len(x)} gave {shown}; expected a floating ({len(x)}, {dim}) tensor (dim={dim})"
            )
        if not bool(torch.isfinite(out).all()):
            raise ContractViolation(f"{where}: the output is not finite")
        if not torch.equal(out, out_again):
            raise ContractViolation(
                f"{where}: built and run twice under seed {seed}, it gave different outputs; initialise from "
                "torch's global generator, which the runner seeds"
            )
        target = F.normalize(torch.randn(out.shape, generator=torch.Generator().manual_seed(seed)), dim=-1)
        (F.normalize(out, dim=-1) * target).sum().backward()
        trainable = [(n, p) for n, p in encoder.named_parameters() if p.requires_grad]
        missing = [n for n, p in trainable if p.grad is None]
        if missing:
            raise ContractViolation(f"{where}: parameter {missing[0]!r} gets no gradient, so it never trains")
        if not all(bool(torch.isfinite(p.grad).all()) for _, p in trainable):
            raise ContractViolation(f"{where}: a parameter gradient is not finite")
        if trainable and not any(bool(p.grad.abs().sum() > 0) for _, p in trainable):
            raise ContractViolation(f"{where}: every parameter gradient is zero; the output does not depend on them")
        encoder.eval()
        with torch.no_grad():
            whole, part = encoder(x), encoder(x[:3])
        if not torch.allclose(whole[:3], part, atol=1e-5, rtol=1e-4):
            raise ContractViolation(
                f"{where}: in eval mode, row i of the output depends on the other rows of the batch; evaluation "
                "embeds in chunks, so an instance's embedding must not depend on its batch"
            )
    return [m.name for m in modalities]


class EncoderContract:
    """The contract every encoder must meet, checked on the modalities of ``task`` whose kind it accepts::

        class TestMyEncoder(EncoderContract):
            plugin = my_package.plugin
            encoder = "my-encoder"
            task = "my-task"                # default: the tiny vector task of pmrl_bench.testing
            task_params = {"n_train": 64}
    """

    plugin: ClassVar[Any] = None
    encoder: ClassVar[str] = ""
    params: ClassVar[dict[str, Any]] = {}
    task: ClassVar[str] = TINY_TASK
    task_params: ClassVar[dict[str, Any]] = {}
    dim: ClassVar[int] = 16

    @pytest.fixture
    def pmrl_component(self, pmrl_plugin_manager: Any, pmrl_register_plugin: Callable[..., str]) -> Component:
        return contract_component(self, "encoder", self.encoder, pmrl_register_plugin, pmrl_plugin_manager)

    def _data(self, manager: Any) -> TaskData:
        try:
            task = manager.registry.get("task", self.task)
        except UsageError as exc:
            raise ContractViolation(f"{type(self).__name__}: {exc}") from None
        return load_task_data(task, self.task_params)

    def test_parameters_have_json_defaults(self, pmrl_component: Component) -> None:
        check_parameters(pmrl_component, self.params)

    def test_shapes_gradients_and_determinism(self, pmrl_component: Component, pmrl_plugin_manager: Any) -> None:
        check_encoder(pmrl_component, self._data(pmrl_plugin_manager), self.params, dim=self.dim)

    def test_seed_batch_declaration(self, pmrl_component: Component, pmrl_plugin_manager: Any) -> None:
        from pmrl_bench.testing.seed_batch import check_encoder_seed_batch

        if not check_encoder_seed_batch(pmrl_component, self._data(pmrl_plugin_manager), self.params, dim=self.dim):
            pytest.skip("the encoder does not declare supports_seed_batch (its seeds train one at a time)")

    def test_one_step_through_the_runner(
        self, pmrl_component: Component, pmrl_plugin_manager: Any, tmp_path: Path
    ) -> None:
        data = self._data(pmrl_plugin_manager)
        kinds = tuple(pmrl_component.metadata.get("modality_kinds", ()))
        chosen = {m.name: pmrl_component.name for m in data.modalities if not kinds or m.kind in kinds}
        run_one_step(
            pmrl_plugin_manager.registry, tmp_path / "results", task=self.task, task_params=self.task_params,
            encoders=chosen, encoder_params={pmrl_component.name: self.params}, dim=self.dim,
        )

