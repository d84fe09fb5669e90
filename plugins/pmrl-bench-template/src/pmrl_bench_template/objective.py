"""SigLIP (Zhai et al., ICCV 2023) between every pair of modalities.

For a pair (x, y): ``L = -1/B sum_i sum_j log sigmoid(z_ij (s x_i . y_j + b))`` with z_ij = 1 on the diagonal and
-1 elsewhere; s = exp(log_scale) starts at 10 and b at -10 (the paper's initialisation). The loss is the mean over
pairs. Every pair is one entry of ``terms``, which pmrl-bench logs and records in the stability block.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from pmrl_bench.components import ObjectiveOutput

MAX_LOG_SCALE = math.log(100.0)


def sigmoid_loss(x: torch.Tensor, y: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    logits = scale * x @ y.T + bias
    signs = 2 * torch.eye(len(x), device=x.device) - 1
    return -F.logsigmoid(signs * logits).sum(1).mean()


class PairwiseSigLIP(nn.Module):
    """SigLIP's sigmoid loss averaged over all modality pairs (learnable scale and bias)."""

    # Parameters are the constructor's keyword arguments; give each a default and validate it here:
    # a ValueError becomes a one-line usage error (exit status 2) before any training starts.
    def __init__(self, scale_init: float = 10.0, bias_init: float = -10.0) -> None:
        super().__init__()
        if not 0 < scale_init <= 100:
            raise ValueError(f"scale_init must be in (0, 100], got {scale_init}")
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale_init)))
        self.bias = nn.Parameter(torch.tensor(float(bias_init)))

    def forward(self, embeddings: Mapping[str, torch.Tensor]) -> ObjectiveOutput:
        # {modality: (B, D) unit vectors}, row i of every modality the same instance.
        if len(embeddings) < 2:
            raise ValueError(f"needs at least 2 modalities, got {list(embeddings)}")
        scale = self.log_scale.exp()
        terms = {
            f"{a}|{b}": sigmoid_loss(embeddings[a].float(), embeddings[b].float(), scale, self.bias)
            for a, b in itertools.combinations(embeddings, 2)
        }
        return ObjectiveOutput(loss=torch.stack(list(terms.values())).mean(), terms=terms)

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        # Optional hook: the runner calls it after every optimiser step. Keep the scale where it stays stable.
        self.log_scale.clamp_(max=MAX_LOG_SCALE)
