"""trifeatures: rendered images and captions with shared, pairwise and synergistic attributes."""

from __future__ import annotations

import numpy as np

from pmrl_bench.builtins.tasks.tokenizer import WordTokenizer
from pmrl_bench.builtins.tasks.trifeatures import CODES, COLOURS, SHAPES, TEXTURES, TrifeaturesTask, render


def test_modalities_shapes_and_labels():
    data = TrifeaturesTask(n_train=200, n_test=50, seed=0).load()
    assert [(m.name, m.kind) for m in data.modalities] == [("image1", "image"), ("image2", "image"),
                                                            ("caption", "text")]
    assert len(data.validation) == 30  # 15% of n_train, distinct caption attributes like test
    for split, n in ((data.train, 170), (data.validation, 30), (data.test, 50)):
        for name in ("image1", "image2"):
            x = split.inputs[name]
            assert x.shape == (n, 3, 32, 32) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
        assert split.inputs["caption"].dtype == np.int64 and split.labels.max() < len(SHAPES)
    again = TrifeaturesTask(n_train=200, n_test=50, seed=0).load()
    np.testing.assert_array_equal(data.test.inputs["image2"], again.test.inputs["image2"])


def test_captions_name_shape_colour1_texture2_and_the_synergy_code():
    data = TrifeaturesTask(n_train=300, n_test=100, seed=1).load()
    tokenizer = WordTokenizer(data.modalities[2].info["vocab"])
    def attributes(split) -> list[tuple[str, ...]]:
        out = []
        for row, label in zip(split.inputs["caption"], split.labels):
            words = tokenizer.decode(row).split()
            assert SHAPES[label] in words  # the class label is the shape the caption names
            found = tuple(w for w in words if w in (*SHAPES, *COLOURS, *TEXTURES, *CODES))
            assert len(found) == 4
            out.append(found)
        return out
    test = attributes(data.test)
    assert len(set(map(frozenset, test))) == len(test)  # test captions are distinct...
    seen = set(map(frozenset, attributes(data.train)))
    assert not set(map(frozenset, test)) & seen  # ...and unseen in training
    validation = set(map(frozenset, attributes(data.validation)))
    assert not validation & seen and not validation & set(map(frozenset, test))  # validation too


def test_code_is_independent_of_each_image_and_fixed_by_both():
    train, _, _ = TrifeaturesTask(n_train=5000, n_test=100, seed=2).attributes(np.random.default_rng(2))
    np.testing.assert_array_equal(train["code"], (train["t1"] + train["c2"]) % 10)
    # every (t1, code) and (c2, code) pair is about equally common: one image alone says nothing about the code
    for attribute in ("t1", "c2"):
        counts = np.bincount(train[attribute] * 10 + train["code"], minlength=100)
        assert counts.min() > 0.4 * counts.mean()


def test_rendering_draws_the_named_colour_on_grey():
    rng = np.random.default_rng(0)
    shapes, solid = np.full(10, SHAPES.index("circle")), np.full(10, TEXTURES.index("solid"))
    colours = np.arange(10)
    images = render(shapes, solid, colours, 32, rng)
    for image, colour in zip(images, COLOURS.values()):
        pixels = image.reshape(3, -1).T
        ink = np.abs(pixels - 0.5).max(axis=1) > 1e-6
        assert 0.1 < ink.mean() < 0.7  # a shape, not an empty or full canvas
        np.testing.assert_allclose(pixels[ink], np.broadcast_to(colour, pixels[ink].shape), atol=1e-6)
    # a texture inks only part of the shape: half-period stripes cover about half of what solid covers
    def inked(texture: str) -> float:
        images = render(np.full(50, 3), np.full(50, TEXTURES.index(texture)), np.zeros(50, int), 32, rng)
        return float((np.abs(images - 0.5).max(axis=1) > 1e-6).mean())
    assert 0.3 < inked("stripes") / inked("solid") < 0.7


def test_trains_end_to_end_with_the_default_image_and_text_encoders():
    """The runner picks cnn for the images and bag for the caption, trains, and evaluates every view."""
    import torch

    from pmrl_bench.plugins import get_registry
    from pmrl_bench.runner.spec import Budget
    from pmrl_bench.runner.sweep_plan import SweepConfig, plan_sweep
    from pmrl_bench.runner.train import TrainOptions, train_and_evaluate

    config = SweepConfig(objectives=["infonce"], tasks=["trifeatures"], seeds=1,
                         budget=Budget(steps=5, batch_size=16, dim=16),
                         overrides={("task", "trifeatures"): {"n_train": "64", "n_test": "32"},
                                    ("encoder", "cnn"): {"width": "8"}})
    plan = plan_sweep(config, get_registry())
    [spec] = plan.specs
    assert {m: e.name for m, e in spec.encoders.items()} == {"image1": "cnn", "image2": "cnn", "caption": "bag"}
    outcome = train_and_evaluate(spec, plan.data["trifeatures"], get_registry(),
                                 TrainOptions(device=torch.device("cpu"), progress=False))
    assert outcome.status == "ok", outcome.error
    assert (len(outcome.metrics["retrieval"]) == 6
            and "image1+image2->caption" in outcome.metrics["retrieval_multimodal"])
    assert "linear:fused" in outcome.metrics["classification"]
