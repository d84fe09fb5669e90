"""A small CNN for image modalities: ``(B, C, H, W)`` or ``(B, H, W)`` inputs of a few dozen pixels a side."""

from __future__ import annotations

import torch
from torch import nn

from pmrl_bench.components import Modality


class SmallCNN(nn.Module):
    """Three 3x3 conv blocks (the last two stride 2) with GroupNorm and GELU, global average pooling, a linear head.

    GroupNorm rather than BatchNorm: contrastive batches are small and evaluation runs in eval mode, and
    batch statistics would leak across the instances of a batch.
    """

    def __init__(self, *, modality: Modality, dim: int, width: int = 32) -> None:
        super().__init__()
        if len(modality.shape) not in (2, 3):
            raise ValueError(f"cnn needs image rows of shape (C, H, W) or (H, W), modality {modality.name!r} has {modality.shape}")
        if width < 4 or width % 4:
            raise ValueError(f"width must be a positive multiple of 4, got {width}")
        self.channels_first = len(modality.shape) == 3
        channels = modality.shape[0] if self.channels_first else 1
        widths = (width, 2 * width, 4 * width)

        def block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.GroupNorm(4, c_out), nn.GELU()]

        self.features = nn.Sequential(
            *block(channels, widths[0], 1), *block(widths[0], widths[1], 2), *block(widths[1], widths[2], 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(widths[2], dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if not self.channels_first:
            x = x.unsqueeze(1)
        return self.head(self.features(x))
