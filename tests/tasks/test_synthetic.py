"""The controlled synthetic generator: blocks land where they should, and XOR synergy is invisible to pairs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from pmrl_bench import create_task
from pmrl_bench.builtins.tasks.synthetic import SyntheticTask
from pmrl_bench.errors import UsageError


def test_same_seed_same_data_and_sizes():
    a = SyntheticTask(modalities=4, n_train=64, n_test=32, pairwise_dim=2, synergy_dim=3, seed=7).load()
    b = SyntheticTask(modalities=4, n_train=64, n_test=32, pairwise_dim=2, synergy_dim=3, seed=7).load()
    assert [m.name for m in a.modalities] == ["m0", "m1", "m2", "m3"]
    for name in a.train.inputs:
        # 15% of n_train is held out for validation (rounded up)
        assert a.train.inputs[name].shape == (54, 32) and a.validation.inputs[name].shape == (10, 32)
        assert a.test.inputs[name].shape == (32, 32)
        np.testing.assert_array_equal(a.train.inputs[name], b.train.inputs[name])


def test_synergy_bits_are_pairwise_independent_but_jointly_determined():
    task = SyntheticTask(modalities=3, synergy_dim=4, seed=3)
    _, bits = task.latent_blocks(4000, np.random.default_rng(0))
    # jointly: the last modality's bits are the product (XOR) of the others'
    np.testing.assert_array_equal(bits[2], bits[0] * bits[1])
    # pairwise: every pair of bit vectors is uncorrelated, up to sampling noise (1/sqrt(4000) ~ 0.016)
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        assert np.abs((bits[i] * bits[j]).mean(axis=0)).max() < 0.06


def test_pairwise_block_is_seen_by_its_pair_only():
    # a task made of pairwise blocks only: m0 predicts m1's observation linearly, but only its pair block of m2
    data = SyntheticTask(modalities=3, shared_dim=0, unique_dim=0, pairwise_dim=4, noise=0.0, n_train=512,
                         seed=0).load()
    x = data.train.inputs
    def r2(a: np.ndarray, b: np.ndarray) -> float:
        coef, *_ = np.linalg.lstsq(a, b, rcond=None)
        return 1 - ((b - a @ coef) ** 2).sum() / ((b - b.mean(0)) ** 2).sum()
    # m0 sees blocks (0,1) and (0,2); each of m1 and m2 shares exactly half its latent dimensions with m0
    assert 0.3 < r2(x["m0"], x["m1"]) < 0.7
    assert data.train.labels is None and data.num_classes is None  # no shared block: no shared label


def test_xor_block_needs_all_modalities(monkeypatch):
    """m2's synergy bit is at chance from m0 or m1 alone, and recoverable from (m0, m1) together."""
    from pmrl_bench.builtins.tasks import synthetic

    task = SyntheticTask(modalities=3, shared_dim=0, unique_dim=0, synergy_dim=1, noise=0.1,
                         input_dim=8, n_train=2000, n_test=500, seed=1)
    # the rows as generated (no validation carved, no content order), so they line up with the latent bits
    monkeypatch.setattr(synthetic, "with_validation", lambda data, *args: data)
    data = task.load()
    assert len(data.train) == 2000
    _, bits = task.latent_blocks(2500, np.random.default_rng([1, 1]))  # the task's own synergy stream
    target = bits[2, :, 0]

    def accuracy(features: list[str]) -> float:
        knn = KNeighborsClassifier(n_neighbors=15)
        knn.fit(np.hstack([data.train.inputs[f] for f in features]), target[:2000])
        return knn.score(np.hstack([data.test.inputs[f] for f in features]), target[2000:])

    assert accuracy(["m2"]) > 0.95  # the bit is really in m2
    assert accuracy(["m0"]) < 0.6 and accuracy(["m1"]) < 0.6
    assert accuracy(["m0", "m1"]) > 0.9


def test_bad_parameters_are_usage_errors():
    with pytest.raises(UsageError, match="at least one of shared_dim"):
        create_task("synthetic", shared_dim=0, pairwise_dim=0, synergy_dim=0)
    with pytest.raises(UsageError, match="must be >= 0"):
        create_task("synthetic", synergy_dim=-1)
