"""What the stability tables show: one row spec per metric of the result files' ``stability`` block."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pmrl_bench.leaderboard.data import MAIN_VIEW, Run
from pmrl_bench.leaderboard.tables import StabilityRow

MEAN_R1_KEY = "test/mean_R@1"

SINGULAR_ROWS = [
    StabilityRow("singular/sigma1_share", "σ1 share σ1²/Σσ²",
                 "1 = each instance's modalities aligned (up to sign); 1/k = orthogonal", ".3f"),
    StabilityRow("singular/gap_min", "gap σ1−σ2, min",
                 "small = leading vector ill-defined; its gradient scales like 1/gap"),
    StabilityRow("singular/gap_p1", "gap σ1−σ2, 1st percentile", "as above, robust to one outlier"),
    StabilityRow("singular/gap_small_fraction", "share of gaps < 1e-3",
                 "instances whose leading vector is near-degenerate", ".3f"),
    StabilityRow("singular/gap_min_over_training", "gap min over all checks", "the worst gap seen during training"),
    StabilityRow("singular/log10_condition_median", "log10 κ(G), median",
                 "κ = σ1²/σk²; large = stack nearly rank-deficient", ".2f"),
    StabilityRow("singular/log10_condition_max", "log10 κ(G), max", "worst instance", ".2f"),
    StabilityRow("singular/sign_flip_rate_mean", "u sign flips between checks",
                 "share of instances whose leading singular vector (sign as the eigensolver returns it) "
                 "flipped sign", ".3f"),
    StabilityRow("singular/u_against_mean_fraction", "u against modality mean",
                 "share of leading vectors pointing away from their own modalities' sum", ".3f"),
    StabilityRow("singular/volume_mean", "volume ∏σ of own tuple",
                 "0 = each instance's modalities span fewer than k dimensions", ".3f"),
    StabilityRow("singular/negative_det_fraction", "det G < 0 in fp32",
                 "rounding makes det negative: volume-based scores are unreliable there", ".3f"),
]
OPTIMISATION_ROWS = [
    StabilityRow("optimisation/grad_norm_mean", "grad norm (before clipping), mean", "scale of the updates"),
    StabilityRow("optimisation/grad_norm_cv", "grad norm CV",
                 "std/mean over steps: how bursty the gradients are", ".3f"),
    StabilityRow("optimisation/grad_norm_max_over_median", "grad norm max/median",
                 "the largest burst relative to a typical step"),
    StabilityRow("optimisation/clipped_fraction", "clipped steps",
                 "share of steps whose gradient norm exceeded the clip", ".3f"),
    StabilityRow("optimisation/loss_spikes", "loss spikes",
                 "steps above the rolling median by > 5 MADs (total over runs)", total=True),
    StabilityRow("optimisation/non_finite", "non-finite loss or gradient",
                 "count over every run, diverged ones included", total=True),
    StabilityRow("optimisation/loss_final", "final training loss", "not comparable across objectives"),
]
SEEDS_ROWS = [
    StabilityRow(MEAN_R1_KEY, "test mean R@1 across seeds",
                 "mean ± std and CV over seeds of the cosine retrieval headline", ".3f"),
    StabilityRow("probe_retrieval/r1_peak_to_final_drop", "R@1 peak-to-final drop (probe)",
                 "best R@1 during training minus the final one, on the probe batch", ".3f"),
    StabilityRow("probe_retrieval/r1_peak_step", "step of the R@1 peak (probe)",
                 "late = still improving at the end", ".0f"),
]


def representation_rows(runs: Sequence[Run]) -> list[StabilityRow]:
    keys = sorted({k for r in runs for k in r.stability})
    pairs = [k for k in keys if k.startswith("representation/positive_cosine/")]
    modalities = [k for k in keys if k.startswith("representation/effective_rank/") and not k.endswith("/all")]
    rows = [
        StabilityRow(k, f"signed positive cosine {k.rsplit('/', 1)[1].replace('|', '–')}",
                     "mean cos of an instance's two modalities; ⚠ negative = aligned with the other's negative",
                     ".3f", warn_negative=True)
        for k in pairs
    ]
    rows += [
        StabilityRow("representation/positive_cosine_min", "signed positive cosine, worst pair",
                     "the pair to look at first", ".3f", warn_negative=True),
        StabilityRow("representation/modality_gap_mean", "modality gap, mean over pairs",
                     "distance between modality means (0 = none)", ".3f"),
        StabilityRow("representation/effective_rank/all", "effective rank, all modalities",
                     "exp(entropy of singular values) of the pooled embeddings; low = collapse"),
    ]
    rows += [StabilityRow(k, f"effective rank, {k.rsplit('/', 1)[1]}", "per modality") for k in modalities]
    rows.append(StabilityRow("representation/uniformity/all", "uniformity, pooled",
                             "log E exp(−2‖x−y‖²): lower = more spread out", ".3f"))
    return rows


def with_headline(runs: Sequence[Run]) -> None:
    """Adds the test mean R@1 (cosine) to each run's scalars, so the stability table shows its spread over seeds."""
    for r in runs:
        view = r.views.get(MAIN_VIEW, {})
        if view:
            r.stability[MEAN_R1_KEY] = float(np.mean([s["R@1"] for s in view.values()]))
