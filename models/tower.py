"""A tower (text → unit vector) and the two-tower LSTM-DSSM."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cell import PeepholeLSTM
from .config import ModelConfig


@dataclass
class Packed:
    """A batch of featurized texts as flat tensors for :class:`torch.nn.EmbeddingBag`.

    ids (N,): n-gram ids of all words of all texts; offsets (W,): where each word starts in ``ids``;
    lengths (B,): words per text. Words are in text order, texts in batch order.
    """

    ids: Tensor
    offsets: Tensor
    lengths: Tensor

    @classmethod
    def from_lists(cls, texts: Sequence[Sequence[Sequence[int]]]) -> Packed:
        ids: list[int] = []
        offsets: list[int] = []
        for words in texts:
            for grams in words:
                offsets.append(len(ids))
                ids.extend(grams)
        return cls(
            torch.tensor(ids, dtype=torch.long),
            torch.tensor(offsets, dtype=torch.long),
            torch.tensor([len(w) for w in texts], dtype=torch.long),
        )


class Tower(nn.Module):
    """n-gram ids → word vectors (sum of n-gram embeddings) → peephole LSTM → pooled state →
    optional projection → L2-normalised vector (B, D)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.EmbeddingBag(cfg.vocab_size + cfg.num_buckets, cfg.embed_dim, mode="sum")
        nn.init.normal_(self.embed.weight, std=0.1)
        self.lstm = PeepholeLSTM(cfg.embed_dim, cfg.hidden_dim)
        self.proj = nn.Linear(cfg.hidden_dim, cfg.out_dim) if cfg.out_dim else nn.Identity()

    def word_vectors(self, p: Packed) -> Tensor:
        """(B, T, E) word vectors, zero past each text's length (T ≥ 1: see ``forward``)."""
        weights = None
        if self.training and self.cfg.ngram_dropout > 0 and p.ids.numel():
            keep = 1.0 - self.cfg.ngram_dropout
            weights = torch.bernoulli(torch.full(p.ids.shape, keep)) / keep
        words = self.embed(p.ids, p.offsets, per_sample_weights=weights)  # (W, E)
        if self.training and self.cfg.word_dropout > 0 and words.shape[0]:
            keep = 1.0 - self.cfg.word_dropout
            words = words * (torch.bernoulli(torch.full((words.shape[0], 1), keep)) / keep)
        B = p.lengths.shape[0]
        T = max(int(p.lengths.max()), 1) if B else 0
        # Scatter the W words into their (text, step) slots of a zero (B*T, E) grid.
        t_idx = torch.arange(T).unsqueeze(0).expand(B, T)
        slot = (torch.arange(B).unsqueeze(1) * T + t_idx)[t_idx < p.lengths.unsqueeze(1)]  # (W,)
        grid = words.new_zeros(B * T, words.shape[1]).index_copy(0, slot, words)
        return grid.view(B, T, words.shape[1])

    def forward(self, p: Packed) -> Tensor:
        x = self.word_vectors(p)  # (B, T, E)
        # A text with no words (punctuation only, say) is read as one empty word (a zero word vector):
        # the zero initial state would have no direction once the vector is the hidden state itself
        # (out_dim 0), and every text must map to a unit vector.
        lengths = p.lengths.clamp(min=1)  # (B,)
        pooling = self.cfg.pooling
        h, _, seq = self.lstm(x, lengths, return_sequence=pooling != "last")
        if pooling != "last" and x.shape[1]:
            # seq repeats the frozen state past each text's end: mask those steps out of the pooling.
            alive = (torch.arange(x.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)  # (B, T, 1)
            if pooling == "max":
                h = seq.masked_fill(~alive, float("-inf")).amax(dim=1)
            else:
                h = (seq * alive).sum(dim=1) / lengths.unsqueeze(1).to(seq.dtype)
        return F.normalize(self.proj(h), dim=-1)  # (B, D), unit length: dot product = cosine


class LSTMDSSM(nn.Module):
    """Query tower and document tower (one module when ``shared_towers``), and γ."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.query = Tower(cfg)
        self.doc = self.query if cfg.shared_towers else Tower(cfg)
        log_gamma = torch.tensor(float(cfg.gamma)).log()
        if cfg.learn_gamma:
            self.log_gamma = nn.Parameter(log_gamma)
        else:
            self.register_buffer("log_gamma", log_gamma)

    @property
    def gamma(self) -> Tensor:
        return self.log_gamma.exp()

    def tower(self, name: str) -> Tower:
        if name == "query":
            return self.query
        if name in ("doc", "document"):
            return self.doc
        raise ValueError(f"unknown tower {name!r} (query or document)")
