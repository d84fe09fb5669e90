"""The stability metrics catch what they claim to catch, on constructed embeddings with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pmrl_bench.runner.monitor import StepRecord, TrainContext
from pmrl_bench.stability import (
    OptimisationMonitor, ProbeRetrievalMonitor, RepresentationMonitor, SingularValueMonitor, default_monitors,
)
from pmrl_bench.stability.optimisation import loss_spikes
from pmrl_bench.stability.representation import effective_rank, uniformity
from pmrl_bench.stability.singular import instance_stack, singular_value_stats


def _unit(n, d, seed):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _noisy(x, scale, seed):
    return F.normalize(x + scale * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _summaries(monitor, *probes):
    for step, embeddings in enumerate(probes):
        monitor.on_probe(step * 25, embeddings)
    return monitor.summary()


def test_anti_aligned_modality_shows_a_negative_signed_cosine_that_the_singular_values_cannot_see():
    a = _unit(256, 32, 0)
    aligned = {"a": a, "b": _noisy(a, 0.02, 1), "c": _noisy(a, 0.02, 2)}
    flipped = {**aligned, "c": -aligned["c"]}  # c is aligned with the negative of a and b

    rep_ok = _summaries(RepresentationMonitor(), aligned)
    rep_bad = _summaries(RepresentationMonitor(), flipped)
    assert min(rep_ok["positive_cosine"].values()) > 0.9
    assert rep_bad["positive_cosine"]["a|b"] > 0.9
    assert rep_bad["positive_cosine"]["a|c"] < -0.9 and rep_bad["positive_cosine"]["b|c"] < -0.9
    assert rep_bad["positive_cosine_min"] < -0.9
    assert rep_bad["curves"]["positive_cosine:a|c"][-1] < -0.9
    # Singular values are sign-blind (docs/objectives.md, pitfall P1): same share for both, the signed cosine tells.
    share_ok = _summaries(SingularValueMonitor(), aligned)["sigma1_share"]
    share_bad = _summaries(SingularValueMonitor(), flipped)["sigma1_share"]
    assert share_ok == pytest.approx(share_bad, abs=1e-5) and share_ok > 0.95


def test_near_degenerate_spectrum_shows_a_small_gap_and_aligned_stacks_a_large_one():
    n, d = 64, 16
    eye = torch.eye(d, dtype=torch.float64)
    # Three mutually orthogonal unit columns per instance: sigma = (1, 1, 1), a degenerate spectrum,
    # nudged by 1e-6 so it is not exactly equal.
    degenerate = {m: F.normalize(eye[i].expand(n, d) + 1e-6 * _unit(n, d, i).double(), dim=-1)
                  for i, m in enumerate("abc")}
    stats = singular_value_stats(instance_stack(degenerate))
    assert stats["gap_min"] < 1e-3 and stats["gap_p1"] < 1e-3 and stats["gap_small_fraction"] == 1.0
    assert stats["sigma1_share"] == pytest.approx(1 / 3, abs=1e-4)
    assert stats["log10_condition_max"] < 1e-3  # G = I: condition number 1

    x = _unit(n, d, 5).double()
    aligned = {"a": x, "b": x, "c": _noisy(x, 1e-4, 6).double()}
    stats = singular_value_stats(instance_stack(aligned))
    assert stats["gap_min"] > 1.7 and stats["gap_small_fraction"] == 0.0  # sigma1 -> sqrt(3), the rest -> 0
    assert stats["sigma1_share"] == pytest.approx(1.0, abs=1e-6)
    assert stats["log10_condition_max"] > 6  # nearly rank 1: G is badly conditioned
    summary = _summaries(SingularValueMonitor(), {k: v.float() for k, v in degenerate.items()})
    assert summary["gap_min"] < 1e-3 and summary["curves"]["gap_min"][0] < 1e-3


def test_sign_flip_rate_is_zero_for_unchanged_embeddings_and_a_fraction_otherwise():
    a = _unit(128, 16, 0)
    probe = {"a": a, "b": _noisy(a, 0.5, 1), "c": _noisy(a, 0.5, 2)}
    summary = _summaries(SingularValueMonitor(), probe, probe, probe)
    assert summary["sign_flip_rate_mean"] == 0.0 and summary["curves"]["sign_flip_rate"] == [None, 0.0, 0.0]
    other = {m: _unit(128, 16, 10 + i) for i, m in enumerate("abc")}
    summary = _summaries(SingularValueMonitor(), probe, other)
    assert 0.0 < summary["sign_flip_rate_mean"] < 1.0


def test_injected_nan_loss_and_nan_gradient_are_counted():
    monitor = OptimisationMonitor()
    records = [
        StepRecord(1, 1.0, {}, 0.5, False, True),
        StepRecord(2, math.nan, {}, math.nan, False, False),  # NaN loss
        StepRecord(3, 0.9, {}, math.inf, False, False),  # finite loss, non-finite gradient
        StepRecord(4, 0.8, {}, 3.0, True, True),
    ]
    for r in records:
        monitor.on_step(r)
    summary = monitor.summary()
    assert (summary["non_finite"], summary["non_finite_loss"], summary["non_finite_grad"]) == (2, 1, 1)
    assert summary["first_non_finite_step"] == 2 and summary["steps"] == 4
    assert (summary["clipped_fraction"] == 0.5
            and summary["grad_norm_max_over_median"] == pytest.approx(3.0 / 1.75, rel=1e-5))


def test_non_finite_probe_embeddings_are_counted_not_crashed_on():
    bad = {"a": torch.full((8, 4), math.nan), "b": _unit(8, 4, 0)}
    for monitor in (SingularValueMonitor(), RepresentationMonitor(), ProbeRetrievalMonitor()):
        summary = _summaries(monitor, bad)
        assert summary == {"probes": 0, "non_finite_probes": 1}


def test_loss_spikes_count_steps_far_above_the_rolling_median():
    rng = np.random.default_rng(0)
    losses = 1.0 + 0.01 * rng.standard_normal(200)
    assert loss_spikes(losses, window=50, mads=5.0) == 0
    losses[120] = 2.0
    losses[170] = 5.0
    assert loss_spikes(losses, window=50, mads=5.0) == 2


def test_effective_rank_and_uniformity_on_known_geometries():
    eye = torch.eye(8, dtype=torch.float64)
    four_dirs = eye[torch.arange(40) % 4]  # 4 orthogonal directions, equally used
    assert effective_rank(four_dirs) == pytest.approx(4.0, rel=1e-6)
    collapsed = eye[[0] * 10]
    assert effective_rank(collapsed) == pytest.approx(1.0, rel=1e-6)
    assert uniformity(collapsed) == pytest.approx(0.0, abs=1e-12)  # every pair at distance 0
    assert uniformity(_unit(200, 8, 0).double()) < -2.0


def test_modality_gap_and_alignment():
    a = _unit(256, 16, 0)
    shifted = F.normalize(a + 0.5 * torch.eye(16)[0], dim=-1)
    summary = _summaries(RepresentationMonitor(), {"a": a, "b": a.clone(), "c": shifted})
    assert summary["modality_gap"]["a|b"] == 0.0 and summary["alignment"]["a|b"] == 0.0
    assert summary["modality_gap"]["a|c"] > 0.2 and summary["alignment"]["a|c"] > 0.05
    assert set(summary["effective_rank"]) == {"a", "b", "c", "all"}
    assert len(summary["spectrum"]["a"]) == 16 and summary["spectrum"]["a"][0] >= summary["spectrum"]["a"][-1]


def test_probe_retrieval_reports_the_peak_to_final_drop():
    a = _unit(64, 16, 0)
    good = {"a": a, "b": _noisy(a, 0.05, 1)}
    worse = {"a": a, "b": _noisy(a, 2.0, 2)}
    summary = _summaries(ProbeRetrievalMonitor(), worse, good, worse)
    assert summary["r1_peak"] == 1.0 and summary["r1_peak_step"] == 25
    assert summary["r1_peak_to_final_drop"] == pytest.approx(1.0 - summary["r1_final"], abs=1e-5)
    assert summary["r1_peak_to_final_drop"] > 0.3


def test_gradient_norm_curve_averages_each_interval_and_tracks_scalar_parameters():
    objective = torch.nn.Module()
    objective.logit_scale = torch.nn.Parameter(torch.tensor(2.0))
    monitor = OptimisationMonitor()
    monitor.on_train_start(TrainContext(4, ["a", "b"], objective))
    monitor.on_probe(0, {})
    for step, g in enumerate([1.0, 3.0, 5.0, 7.0], start=1):
        monitor.on_step(StepRecord(step, 1.0 / step, {}, g, False, True))
        if step % 2 == 0:
            objective.logit_scale.data += 1
            monitor.on_probe(step, {})
    curves = monitor.summary()["curves"]
    assert curves["step"] == [2, 4] and curves["grad_norm"] == [2.0, 6.0]
    assert curves["param:logit_scale"] == [3.0, 4.0]


def test_default_monitors_are_fresh_and_named_uniquely():
    first, second = default_monitors(), default_monitors()
    names = [m.name for m in first]
    assert len(set(names)) == len(names) == 4
    assert all(a is not b for a, b in zip(first, second))


def test_fast_paths_agree_with_the_reference_computations():
    from pmrl_bench.evaluation.retrieval import pairwise_retrieval
    from pmrl_bench.evaluation.retrieval import mean_r1
    from pmrl_bench.stability.singular import leading_vectors

    a = _unit(96, 8, 0)
    probe = {"a": a, "b": _noisy(a, 0.3, 1), "c": _noisy(a, 0.6, 2)}
    reference = pairwise_retrieval(probe)
    assert mean_r1(probe) == pytest.approx(np.mean([s["R@1"] for s in reference.values()]), abs=1e-12)
    stack = instance_stack({k: v.double() for k, v in probe.items()})
    sigma = torch.linalg.svdvals(stack)
    stats = singular_value_stats(stack)
    assert stats["sigma_mean"] == pytest.approx(sigma.mean(dim=0).tolist(), abs=1e-9)
    assert stats["gap_min"] == pytest.approx(float((sigma[:, 0] - sigma[:, 1]).min()), abs=1e-9)
    u_svd = torch.linalg.svd(stack, full_matrices=False)[0][:, :, 0]
    u = leading_vectors(stack)
    assert torch.allclose((u * u_svd).sum(dim=1).abs(), torch.ones(96, dtype=torch.float64), atol=1e-9)
    x = _unit(50, 6, 3).double()
    brute = torch.log(torch.stack([torch.exp(-2 * (x[i] - x[j]).pow(2).sum())
                                   for i in range(50) for j in range(50) if i != j]).mean())
    assert uniformity(x) == pytest.approx(float(brute), abs=1e-6)  # x is unit only to float32 precision
