"""The singular-value view of each instance's stack Z_i = [z_i^1 .. z_i^k] (D x k) on the probe batch.

See docs/objectives.md#stability-metrics: for unit columns sum_j sigma_j^2 = k, so the sigma1 share
sigma1^2 / sum sigma^2 is 1 exactly at full alignment (up to sign); the gap sigma1 - sigma2 governs the
gradient through the leading vector (P3); the sign of the leading vector u_i is arbitrary per call (P2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from pmrl_bench.rounding import sig, sig_list
from pmrl_bench.stability.tensors import to_cpu64
from pmrl_bench.stability.probe import ProbeMonitor

SMALL_GAP = 1e-3  # "fraction of instances with sigma1 - sigma2 below this"
GAP_PERCENTILE = 1.0  # the low percentile of the gap that is reported besides the minimum
MIN_EIGENVALUE = 1e-24  # clamps sigma_k^2 so the condition number of G stays finite


def instance_stack(embeddings: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``(N, D, k)``: every instance's modality embeddings as columns, modalities in sorted order."""
    return torch.stack([embeddings[m] for m in sorted(embeddings)], dim=-1)


def gram_matrices(stack: torch.Tensor) -> torch.Tensor:
    """``(N, k, k)``: G_i = Z_i^T Z_i, the cosines between an instance's modalities."""
    return stack.transpose(1, 2) @ stack


def singular_value_stats(stack: torch.Tensor) -> dict[str, Any]:
    """Statistics of the per-instance singular values of a float64 ``(N, D, k)`` stack.

    Singular values come from the k x k Gram route (sigma_j^2 = eigenvalues of G_i, docs/objectives.md,
    pitfall P7): far cheaper than N SVDs of D x k matrices and, in float64, as exact as the metrics need.
    """
    gram = gram_matrices(stack)
    eigenvalues = torch.linalg.eigvalsh(gram).flip(-1).clamp_min(0)  # (N, k), descending
    s = eigenvalues.sqrt()
    energy = eigenvalues.sum(dim=1)
    share = (eigenvalues[:, 0] / energy.clamp_min(MIN_EIGENVALUE)).numpy()
    gap = (s[:, 0] - s[:, 1]).numpy()
    condition = (eigenvalues[:, 0] / eigenvalues[:, -1].clamp_min(MIN_EIGENVALUE)).numpy()
    volume = s.prod(dim=1).numpy()  # sqrt(det G): the GRAM volume of an instance's own tuple
    # det G in fp32, as volume-based code computes it: a negative value is rounding (pitfall P8).
    negative_det = (torch.linalg.det(gram.float()) < 0).double().mean().item()
    return {
        "sigma1_share": float(share.mean()),
        "sigma_mean": [float(v) for v in s.mean(dim=0)],
        "gap_min": float(gap.min()),
        "gap_p1": float(np.percentile(gap, GAP_PERCENTILE)),
        "gap_small_fraction": float((gap < SMALL_GAP).mean()),
        "log10_condition_median": float(np.log10(np.median(condition))),
        "log10_condition_max": float(np.log10(condition.max())),
        "volume_mean": float(volume.mean()),
        "negative_det_fraction": float(negative_det),
    }


def leading_vectors(stack: torch.Tensor) -> torch.Tensor:
    """``(N, D)`` leading left singular vectors u_i = Z_i v_i / sigma_i, with the sign the eigensolver returns (P2)."""
    eigenvalues, vectors = torch.linalg.eigh(gram_matrices(stack))
    v = vectors[:, :, -1:]  # eigenvector of the largest eigenvalue
    return (stack @ v).squeeze(-1) / eigenvalues[:, -1:].clamp_min(MIN_EIGENVALUE).sqrt()


class SingularValueMonitor(ProbeMonitor):
    """Sigma1 share, gap sigma1 - sigma2, condition number of G and leading-vector sign flips, per probe.

    Singular values are computed in float64 on the CPU. The leading vector u comes from a float32
    eigendecomposition of G on the embeddings' own device, as an SVD- or eigh-based objective would get it;
    its sign flip rate between checks says how arbitrary that sign is during training.
    """

    name = "singular"

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int] = []
        self.share: list[float] = []
        self.gap_min: list[float] = []
        self.flip_rate: list[float] = []
        self.last: dict[str, Any] = {}
        self.previous_u: torch.Tensor | None = None
        self.against_mean = float("nan")
        self.uniformity = float("nan")

    def observe(self, step: int, embeddings: Mapping[str, torch.Tensor]) -> None:
        stats = singular_value_stats(instance_stack(to_cpu64(dict(embeddings))))
        native = instance_stack(embeddings).float()
        u = leading_vectors(native)
        flip = float("nan")
        if self.previous_u is not None and len(self.previous_u) == len(u):
            flip = float(((u * self.previous_u).sum(dim=1) < 0).double().mean())
        self.previous_u = u
        # Fraction of u_i pointing against their own modality mean, and mean u_i . u_j (i != j).
        self.against_mean = float(((u.unsqueeze(-1) * native).sum(dim=(1, 2)) < 0).double().mean())
        n = len(u)
        if n > 1:
            total = (u.sum(dim=0) ** 2).sum() - (u**2).sum()
            self.uniformity = float(total / (n * (n - 1)))
        self.steps.append(step)
        self.share.append(stats["sigma1_share"])
        self.gap_min.append(stats["gap_min"])
        self.flip_rate.append(flip)
        self.last = stats

    def summary(self) -> dict[str, Any]:
        if not self.steps:
            return {"probes": 0, "non_finite_probes": self.non_finite_probes}
        flips = [f for f in self.flip_rate if np.isfinite(f)]
        final = self.last
        return {
            "probes": len(self.steps),
            "non_finite_probes": self.non_finite_probes,
            # At the end of training (the last probe):
            "sigma1_share": sig(final["sigma1_share"], 6),
            "sigma_mean": sig_list(final["sigma_mean"], 6),
            "gap_min": sig(final["gap_min"], 6),
            "gap_p1": sig(final["gap_p1"], 6),
            "gap_small_fraction": sig(final["gap_small_fraction"], 6),
            "log10_condition_median": sig(final["log10_condition_median"], 6),
            "log10_condition_max": sig(final["log10_condition_max"], 6),
            "volume_mean": sig(final["volume_mean"], 6),
            "negative_det_fraction": sig(final["negative_det_fraction"], 6),
            "u_against_mean_fraction": sig(self.against_mean, 6),
            "u_uniformity": sig(self.uniformity, 6),
            # Over all probes:
            # Step 0 is the initialisation, shared by every objective with the same seed: leave it out.
            "gap_min_over_training": sig(min(g for st, g in zip(self.steps, self.gap_min)
                                             if st > 0 or len(self.steps) == 1), 6),
            "sign_flip_rate_mean": sig(float(np.mean(flips)), 6) if flips else None,
            "sign_flip_rate_max": sig(float(np.max(flips)), 6) if flips else None,
            "curves": {
                "step": list(self.steps),
                "sigma1_share": sig_list(self.share),
                "gap_min": sig_list(self.gap_min),
                "sign_flip_rate": sig_list(self.flip_rate),
            },
        }
