"""PMRL (Liu, Xia, Ng, Chua; TPAMI 2026): principled multimodal representation learning.

Per instance, the k L2-normalised modality embeddings form a D×k matrix Z_i with singular values σ_i.
* intra: softmax cross-entropy of σ_i/tau1 toward σ_i1 (full alignment = rank-1 Gram matrix);
* inter: cross-entropy of u u^T / tau2 over the batch, u_i the leading left singular vector of Z_i.
The official code's ITM term needs a cross-encoder the harness does not have, so it is left out.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from pmrl_bench.builtins.objectives._common import stack_modalities
from pmrl_bench.components import ObjectiveOutput


class PMRLLoss(nn.Module):
    """PMRL: softmax over singular values toward the largest, plus contrast of leading singular vectors."""

    def __init__(self, tau1: float = 0.05, tau2: float = 0.1) -> None:
        super().__init__()
        if tau1 <= 0 or tau2 <= 0:
            raise ValueError(f"tau1 and tau2 must be > 0, got tau1={tau1}, tau2={tau2}")
        self.tau1 = float(tau1)
        self.tau2 = float(tau2)

    def forward(self, embeddings: Mapping[str, torch.Tensor]) -> ObjectiveOutput:
        # There is no half-precision SVD: keep the linear algebra in float32, outside autocast.
        with torch.autocast(device_type=next(iter(embeddings.values())).device.type, enabled=False):
            Z = stack_modalities(embeddings)  # (B, D, k)
            U, S, _ = torch.linalg.svd(Z, full_matrices=False)  # S: (B, k), descending
            targets = torch.zeros(len(S), dtype=torch.long, device=S.device)
            intra = F.cross_entropy(S / self.tau1, targets)
            u = U[:, :, 0]
            inter = F.cross_entropy(u @ u.T / self.tau2, torch.arange(len(u), device=u.device))
        return ObjectiveOutput(loss=intra + inter, terms={"intra": intra, "inter": inter})
