"""A deterministic word tokenizer that ships with pmrl-bench (no download): text modalities as token ids.

A text modality's rows are ``(length,)`` int64 token ids, 0-padded on the right. Its ``Modality.info`` carries
``vocab`` (the word of every id, so an encoder can turn ids back into text, e.g. for a pretrained tokenizer),
``vocab_size`` and ``pad_id``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """Lower-cased runs of letters and digits; everything else separates words."""
    return _WORD.findall(text.lower())


class WordTokenizer:
    """Words to ids over a fixed vocabulary: id 0 pads, id 1 stands for any word not in the vocabulary."""

    def __init__(self, vocab: Sequence[str]) -> None:
        if list(vocab[:2]) != [PAD, UNK] or len(set(vocab)) != len(vocab):
            raise ValueError(f"a vocabulary starts with {PAD!r}, {UNK!r} and has no repeated word")
        self.vocab = tuple(vocab)
        self.ids = {word: i for i, word in enumerate(self.vocab)}

    @classmethod
    def fit(cls, texts: Iterable[str], max_size: int | None = None) -> WordTokenizer:
        """Vocabulary of the given texts, most frequent first, ties alphabetical, so the ids are reproducible."""
        counts = Counter(w for text in texts for w in words(text))
        ranked = sorted(counts, key=lambda w: (-counts[w], w))
        return cls([PAD, UNK, *ranked[: None if max_size is None else max(0, max_size - 2)]])

    def encode(self, texts: Sequence[str], length: int | None = None) -> np.ndarray:
        """``(len(texts), length)`` int64 ids, right-padded; longer texts are cut. Default length: the longest."""
        tokens = [[self.ids.get(w, UNK_ID) for w in words(t)] for t in texts]
        length = max(1, max((len(t) for t in tokens), default=1)) if length is None else length
        out = np.full((len(texts), length), PAD_ID, dtype=np.int64)
        for row, ids in enumerate(tokens):
            out[row, : min(length, len(ids))] = ids[:length]
        return out

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.vocab[i] for i in ids if i not in (PAD_ID, UNK_ID))

    def info(self) -> dict[str, Any]:
        return {"vocab": self.vocab, "vocab_size": len(self.vocab), "pad_id": PAD_ID}
