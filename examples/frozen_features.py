"""Frozen features + trainable heads: build a table of features from frozen models, then let pmrl-bench train heads.

The third protocol researchers use (beside training from scratch and continuing from an aligned checkpoint): the
encoders are frozen pretrained networks, their features are computed once and cached, and only small heads are
trained on top. In pmrl-bench it is the ``table`` task over precomputed vectors (the ``mlp`` encoder is then the
trainable head). This script builds such a table from the ``trifeatures`` task:

* ``caption``: all-MiniLM-L6-v2 sentence embeddings (frozen, 384-d; the ``text`` extra ships the weights, nothing is
  downloaded);
* ``image1``, ``image2``: a frozen convolutional feature extractor (a seeded, untrained network here, so the example
  runs offline; put any pretrained image model in its place);
* ``shape``: the class label.

It writes ``train.parquet``, ``validation.parquet`` and ``test.parquet`` into one directory, which ``table`` reads as
the published split::

    python examples/frozen_features.py frozen-trifeatures
    pmrl-bench run --objectives infonce,pmrl --tasks table --set task.table.source=frozen-trifeatures \\
        --set task.table.columns=image1,image2,caption --set task.table.label=shape
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from pmrl_bench import create_task
from pmrl_bench.builtins.encoders.text import minilm_sentence_embeddings
from pmrl_bench.builtins.tasks.tokenizer import WordTokenizer
from pmrl_bench.components import Split


def frozen_image_model(seed: int = 0) -> nn.Module:
    """A fixed feature extractor: three conv blocks and global average pooling, weights seeded and never trained."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
    return model.eval().requires_grad_(False)


@torch.no_grad()
def features(split: Split, vocab: list[str], image_model: nn.Module) -> pd.DataFrame:
    tokenizer = WordTokenizer(vocab)
    captions = [tokenizer.decode(row) for row in split.inputs["caption"]]
    columns = {
        "image1": image_model(torch.as_tensor(split.inputs["image1"])).numpy(),
        "image2": image_model(torch.as_tensor(split.inputs["image2"])).numpy(),
        "caption": minilm_sentence_embeddings(captions).numpy(),
    }
    frame = pd.DataFrame({name: list(values.astype(np.float32)) for name, values in columns.items()})
    frame["shape"] = np.asarray(split.labels)
    return frame


def build(out: Path, n_train: int = 2400, n_test: int = 500) -> None:
    data = create_task("trifeatures", n_train=n_train, n_test=n_test).load()
    vocab = list(data.modalities[2].info["vocab"])
    image_model = frozen_image_model()
    out.mkdir(parents=True, exist_ok=True)
    for name, split in (("train", data.train), ("validation", data.validation), ("test", data.test)):
        features(split, vocab, image_model).to_parquet(out / f"{name}.parquet")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description="Write frozen features of trifeatures as train/validation/test parquet")
    parser.add_argument("out", type=Path, help="output directory")
    parser.add_argument("--n-train", type=int, default=2400)
    parser.add_argument("--n-test", type=int, default=500)
    args = parser.parse_args()
    build(args.out, args.n_train, args.n_test)
    print(f"wrote {args.out}/train.parquet, validation.parquet and test.parquet")
