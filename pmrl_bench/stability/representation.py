"""Representation metrics on the probe batch (docs/objectives.md#stability-metrics).

Per modality: effective rank, stable rank, the covariance spectrum, uniformity (Wang & Isola).
Per modality pair: the **signed** mean positive cosine (negative = one modality aligned with the other's
negative, pitfall P1), alignment E||x - y||^2 and the modality gap ||mean_a - mean_b||.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import torch

from pmrl_bench.rounding import sig, sig_list
from pmrl_bench.stability.tensors import to_cpu64
from pmrl_bench.stability.probe import ProbeMonitor

EPS = 1e-12


def pair_key(a: str, b: str) -> str:
    return f"{a}|{b}"


def effective_rank(x: torch.Tensor) -> float:
    """exp(entropy) of the normalised singular values (Roy & Vetterli 2007; RankMe), in [1, min(N, D)]."""
    s = torch.linalg.svdvals(x)
    p = s / s.sum() + EPS
    return float(torch.exp(-(p * p.log()).sum()))


def stable_rank(x: torch.Tensor) -> float:
    """||X||_F^2 / ||X||_2^2."""
    s = torch.linalg.svdvals(x)
    return float((s**2).sum() / (s[0] ** 2).clamp_min(EPS))


def covariance_spectrum(x: torch.Tensor) -> list[float]:
    """Eigenvalues of the covariance of the rows, descending, as fractions of their sum (dimensional collapse)."""
    centred = x - x.mean(dim=0, keepdim=True)
    eig = torch.linalg.eigvalsh(centred.T @ centred / len(x)).flip(0).clamp_min(0)
    return (eig / eig.sum().clamp_min(EPS)).tolist()


def uniformity(x: torch.Tensor, t: float = 2.0) -> float:
    """log E_{i != j} exp(-t ||x_i - x_j||^2) over distinct rows of unit vectors (Wang & Isola 2020)."""
    n = len(x)
    if n < 2:
        return math.nan
    sq = (2 - 2 * (x @ x.T)).clamp_min(0)  # ||x_i - x_j||^2 for unit rows: one matmul, no cdist
    # Every term is >= exp(-4t), so summing then removing the n diagonal ones (exactly 1 each) is safe.
    off_diagonal = torch.exp(-t * sq).sum() - torch.exp(-t * sq.diagonal()).sum()
    return float(torch.log(off_diagonal / (n * (n - 1))))


def positive_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Signed mean cosine between row i of ``a`` and row i of ``b`` (unit rows)."""
    return float((a * b).sum(dim=1).mean())


def alignment(a: torch.Tensor, b: torch.Tensor) -> float:
    """E ||a_i - b_i||^2 over positive pairs (= 2 - 2 cos for unit rows)."""
    return float((a - b).pow(2).sum(dim=1).mean())


def modality_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Distance between the modality means (Liang et al. 2022)."""
    return float((a.mean(dim=0) - b.mean(dim=0)).norm())


def representation_stats(embeddings: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Every representation metric of float64 unit-row embeddings ``{modality: (N, D)}``."""
    names = sorted(embeddings)
    pooled = torch.cat([embeddings[m] for m in names])
    pairs = list(itertools.combinations(names, 2))
    cosine = {pair_key(a, b): positive_cosine(embeddings[a], embeddings[b]) for a, b in pairs}
    gap = {pair_key(a, b): modality_gap(embeddings[a], embeddings[b]) for a, b in pairs}
    return {
        "effective_rank": {**{m: effective_rank(embeddings[m]) for m in names}, "all": effective_rank(pooled)},
        "stable_rank": {m: stable_rank(embeddings[m]) for m in names},
        "uniformity": {**{m: uniformity(embeddings[m]) for m in names}, "all": uniformity(pooled)},
        "positive_cosine": cosine,
        "alignment": {pair_key(a, b): alignment(embeddings[a], embeddings[b]) for a, b in pairs},
        "modality_gap": gap,
        "positive_cosine_min": min(cosine.values()) if cosine else math.nan,
        "modality_gap_mean": sum(gap.values()) / len(gap) if gap else math.nan,
        "spectrum": {m: covariance_spectrum(embeddings[m]) for m in names},
    }


class RepresentationMonitor(ProbeMonitor):
    """Full representation metrics at the last probe; the signed positive cosine per pair at every probe."""

    name = "representation"

    def __init__(self) -> None:
        super().__init__()
        self.latest: dict[str, torch.Tensor] | None = None
        self.steps: list[int] = []
        self.cosine_curves: dict[str, list[float]] = {}

    def observe(self, step: int, embeddings: Mapping[str, torch.Tensor]) -> None:
        names = sorted(embeddings)
        self.steps.append(step)
        for a, b in itertools.combinations(names, 2):  # cheap: one dot per row, on the embeddings' device
            value = positive_cosine(embeddings[a].float(), embeddings[b].float())
            self.cosine_curves.setdefault(pair_key(a, b), []).append(value)
        self.latest = dict(embeddings)  # the full metrics need only the last one: computed in summary()

    def summary(self) -> dict[str, Any]:
        if self.latest is None:
            return {"probes": 0, "non_finite_probes": self.non_finite_probes}
        stats = representation_stats(to_cpu64(self.latest))
        out: dict[str, Any] = {"probes": len(self.steps), "non_finite_probes": self.non_finite_probes}
        for key, value in stats.items():
            if key == "spectrum":
                out[key] = {m: sig_list(v, 3) for m, v in value.items()}
            elif isinstance(value, dict):
                out[key] = {k: sig(v, 6) for k, v in value.items()}
            else:
                out[key] = sig(value, 6)
        out["curves"] = {"step": list(self.steps),
                         **{f"positive_cosine:{k}": sig_list(v) for k, v in self.cosine_curves.items()}}
        return out
