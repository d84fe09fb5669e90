"""A small CNN for image modalities: ``(B, C, H, W)`` or ``(B, H, W)`` inputs of a few dozen pixels a side."""

from __future__ import annotations

import torch
from torch import nn

from pmrl_bench.builtins.encoders._checks import whole
from pmrl_bench.components import Modality


class SmallCNN(nn.Module):
    """Three stride-2 3x3 conv blocks with ReLU, global average pooling, LayerNorm and a linear head.

    Cheap on a CPU on purpose: stride 2 from the first layer and no per-layer normalisation (GroupNorm
    tripled the step time on 32 px images). No batch statistics either: contrastive batches would leak
    across instances, and evaluation runs in eval mode.

    Args:
        width: channels of the first conv block; the second and third have twice and four times as many.
    """

    def __init__(self, *, modality: Modality, dim: int, width: int = 32) -> None:
        super().__init__()
        if len(modality.shape) not in (2, 3):
            raise ValueError("cnn needs image rows of shape (C, H, W) or (H, W), "
                             f"modality {modality.name!r} has {modality.shape}")
        whole("width", width)
        self.channels_first = len(modality.shape) == 3
        channels = modality.shape[0] if self.channels_first else 1
        widths = (channels, width, 2 * width, 4 * width)
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU()]
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LayerNorm(widths[-1]))
        self.head = nn.Linear(widths[-1], dim)
        self.supports_seed_batch = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if not self.channels_first:
            x = x.unsqueeze(1)
        return self.head(self.features(x))
