"""Which built-ins declare ``supports_seed_batch``, and the contract check that holds every declaration to it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pmrl_bench.components import ObjectiveOutput
from pmrl_bench.plugins import get_registry
from pmrl_bench.testing import ContractViolation, TINY_TASK
from pmrl_bench.testing.seed_batch import check_encoder_seed_batch, check_objective_seed_batch, check_seed_batch
from pmrl_bench.testing.task import load_task_data

DECLARED = {"pmrl": True, "pmrl-intra": True, "infonce": True, "anchor": True, "centrobind": True, "volume": True,
            "gram": False, "triangle": False, "confu": False}  # confu's fusion dropout (0.1) draws per seed


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_every_built_in_objective_keeps_its_declaration(name):
    params = {"dim": 16} if name == "confu" else {}
    component = get_registry().get("objective", name)
    assert check_objective_seed_batch(component, params, dim=16) is DECLARED[name]


def test_confu_without_dropout_declares_and_keeps_it():
    component = get_registry().get("objective", "confu")
    assert check_objective_seed_batch(component, {"dim": 16, "dropout": 0.0}, dim=16)


@pytest.mark.parametrize(("encoder", "params", "declared"), [
    ("mlp", {}, True), ("mlp", {"dropout": 0.1}, False), ("linear", {}, True),
])
def test_vector_encoders_keep_their_declaration(pmrl_plugin_manager, encoder, params, declared):
    data = load_task_data(pmrl_plugin_manager.registry.get("task", TINY_TASK), {})
    component = pmrl_plugin_manager.registry.get("encoder", encoder)
    assert check_encoder_seed_batch(component, data, params) is declared


class DropoutThatLies(nn.Module):
    """Declares support but draws random numbers in forward: vmap refuses it."""

    supports_seed_batch = True

    def forward(self, embeddings):
        loss = torch.stack([nn.functional.dropout(e, 0.5).sum() for e in embeddings.values()]).sum()
        return ObjectiveOutput(loss=loss, terms={})


class WritesAnAttribute(nn.Module):
    """Declares support but keeps a statistic of the last forward as an attribute, as GRAM keeps its clamped
    fraction: under vmap that attribute would hold every seed's value."""

    supports_seed_batch = True

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, embeddings):
        loss = self.scale * torch.stack([e.sum() for e in embeddings.values()]).sum()
        self.last_loss = loss.detach()
        return ObjectiveOutput(loss=loss, terms={})


@pytest.mark.parametrize("module", [DropoutThatLies, WritesAnAttribute])
def test_a_wrong_declaration_is_a_contract_violation(module):
    def inputs(seed):
        generator = torch.Generator().manual_seed(seed)
        return {m: nn.functional.normalize(torch.randn(4, 8, generator=generator), dim=-1) for m in ("a", "b")}

    with pytest.raises(ContractViolation, match="supports_seed_batch"):
        check_seed_batch(lambda seed: module(), inputs, "objective 'liar'")
