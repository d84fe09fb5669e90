"""A split's inputs on the device, and their unit-norm embeddings: what every evaluation view starts from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pmrl_bench.components import Split

# Rows per encoder call at evaluation: bounds activation memory whatever the split's size.
EMBED_BATCH = 1024


def split_tensors(split: Split, names: Sequence[str], device: torch.device) -> dict[str, torch.Tensor]:
    """The inputs of ``names`` in ``split``, as tensors on ``device``."""
    from pmrl_bench.device import upload

    return {m: upload(split.inputs[m], device) for m in names}


@torch.no_grad()
def embed(encoders: nn.ModuleDict, inputs: Mapping[str, torch.Tensor],
          batch_size: int = EMBED_BATCH) -> dict[str, torch.Tensor]:
    """Unit-norm embeddings of every instance, per modality, in eval mode."""
    was_training = encoders.training
    encoders.eval()
    out = {
        m: torch.cat([F.normalize(encoders[m](x[i : i + batch_size]).float(), dim=-1)
                      for i in range(0, len(x), batch_size)])
        for m, x in inputs.items()
    }
    encoders.train(was_training)
    return out
