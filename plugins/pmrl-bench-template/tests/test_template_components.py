"""What the contract suite cannot know: that each component computes what it claims."""

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import pmrl_bench
from pmrl_bench.errors import UsageError
from pmrl_bench.testing import unit_embeddings
from pmrl_bench_template import plugin
from pmrl_bench_template.objective import PairwiseSigLIP
from pmrl_bench_template.task import DigitStrips


def test_siglip_matches_the_paper_formula():
    embeddings = unit_embeddings(2, batch=4, dim=6, seed=0)
    x, y = embeddings.values()
    loss = PairwiseSigLIP(scale_init=5.0, bias_init=-2.0)(embeddings).loss
    expected = 0.0
    for i in range(4):
        for j in range(4):
            z = 1.0 if i == j else -1.0
            expected -= math.log(1 / (1 + math.exp(-z * (5.0 * float(x[i] @ y[j]) - 2.0))))
    assert float(loss.detach()) == pytest.approx(expected / 4, rel=1e-5)


def test_siglip_clamps_its_scale_after_each_step():
    objective = PairwiseSigLIP(scale_init=100.0)
    with torch.no_grad():
        objective.log_scale.add_(1.0)
    objective.after_optimizer_step()
    assert float(objective.log_scale.detach().exp()) == pytest.approx(100.0)


def test_bad_parameter_is_a_usage_error(pmrl_register_plugin):
    pmrl_register_plugin(plugin)
    with pytest.raises(UsageError, match=r"scale_init must be in \(0, 100\], got -1"):
        pmrl_bench.create_objective("template-siglip", scale_init=-1.0)


@pytest.mark.parametrize("views", [2, 3, 4])
def test_digit_strips_reassemble_the_images(views):
    data = DigitStrips(views=views, seed=1).load()
    strips = [data.test.inputs[m.name].reshape(len(data.test), -1, 8) for m in data.modalities]
    images = np.concatenate(strips, axis=1)
    digits = load_digits()
    match = {tuple((img / 16.0).astype(np.float32).ravel()): label for img, label in zip(digits.images, digits.target)}
    assert all(match.get(tuple(image.ravel())) == label for image, label in zip(images, data.test.labels))
    assert len(data.train) + len(data.test) == 1797
    # stratified: every class is in the test split in about the same proportion as overall
    assert np.bincount(data.test.labels, minlength=10).min() >= 40
