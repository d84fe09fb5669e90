"""An encoder: built as ``factory(modality=..., dim=..., **params)``; maps ``(B, *modality.shape)`` to ``(B, dim)``.
The runner L2-normalises the output, so the encoder need not."""

from __future__ import annotations

import math

import torch
from torch import nn

from pmrl_bench.components import Modality


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class ResidualMLP(nn.Module):
    """Residual MLP over a flattened vector."""

    # `modality` and `dim` come from the runner; the other keyword arguments are user parameters.
    def __init__(self, *, modality: Modality, dim: int, hidden: int = 128, blocks: int = 2) -> None:
        super().__init__()
        if hidden < 1 or blocks < 0:
            raise ValueError(f"hidden must be >= 1 and blocks >= 0, got hidden={hidden}, blocks={blocks}")
        self.net = nn.Sequential(
            nn.Linear(math.prod(modality.shape), hidden),
            *(Block(hidden) for _ in range(blocks)),
            nn.LayerNorm(hidden),  # per instance, never per batch: an embedding must not depend on its batch
            nn.Linear(hidden, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1).float())
