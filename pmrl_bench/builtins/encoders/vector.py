"""Encoders for vector modalities (any fixed-shape input, flattened)."""

from __future__ import annotations

import math

import torch
from torch import nn

from pmrl_bench.builtins.encoders._checks import fraction, whole
from pmrl_bench.components import Modality


MAX_LAYERS = 1000  # hidden layers of the MLP: far past any useful depth, and quick to build


def _input_size(modality: Modality) -> int:
    return math.prod(modality.shape)


class LinearEncoder(nn.Module):
    """One linear projection of a flattened vector to the shared dimension."""

    supports_seed_batch = True

    def __init__(self, *, modality: Modality, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(_input_size(modality), dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.flatten(1))


class MLPEncoder(nn.Module):
    """MLP over a flattened vector: LayerNorm (unless it has one feature), ``layers`` hidden GELU layers, then a
    linear projection.

    Args:
        hidden: width of each hidden layer.
        layers: number of hidden layers.
        dropout: dropout after each hidden layer, in [0, 1).
    """

    def __init__(self, *, modality: Modality, dim: int, hidden: int = 256, layers: int = 2,
                 dropout: float = 0.0) -> None:
        super().__init__()
        whole("hidden", hidden)
        whole("layers", layers, maximum=MAX_LAYERS)
        dropout = fraction("dropout", dropout)
        size = _input_size(modality)
        # LayerNorm of a single feature maps every input to the same value: a scalar column would carry nothing.
        blocks: list[nn.Module] = [nn.LayerNorm(size)] if size > 1 else []
        for _ in range(layers):
            blocks += [nn.Linear(size, hidden), nn.GELU(), nn.Dropout(dropout)]
            size = hidden
        blocks.append(nn.Linear(size, dim))
        self.net = nn.Sequential(*blocks)
        self.supports_seed_batch = dropout == 0  # dropout draws differently when seeds train as one model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))
