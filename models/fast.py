"""The query tower for one text at a time, in NumPy: the same math as ``tower.py`` / ``cell.py`` without
torch's per-operation dispatch, which dominates a single short query (a few words, a few dozen small
ops per word). Used by :class:`models.encoder.Encoder` for single texts; equal to the torch tower to
float32 rounding (a test checks 1e-5).

The arrays are views of the torch parameters (no copy: the embedding table alone is ~60 MB), so the
two paths always hold the same weights. NumPy's BLAS must run one thread here (the service sets it, as
it does torch's): on 2 busy cores OpenBLAS's second thread made a query 16 ms instead of 0.8 ms.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import nn

from .tower import Tower


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # = 1 / (1 + e^−x), without overflow for large |x|


class NumpyTower:
    """One featurized text (a list of words, each a list of n-gram ids) → its unit vector (D,)."""

    def __init__(self, tower: Tower) -> None:
        cell = tower.lstm.cell
        self.pooling = tower.cfg.pooling
        self.H = cell.hidden_size
        self.emb = tower.embed.weight.detach().numpy()  # (V, E), a view
        self.w_ih = cell.weight_ih.detach().numpy()  # (4H, E)
        self.w_hh = cell.weight_hh.detach().numpy()  # (4H, H): w_hh @ h, a row-major matrix-vector product
        self.bias = cell.bias.detach().numpy()  # (4H,)
        self.peep_i = cell.peep_i.detach().numpy()
        self.peep_f = cell.peep_f.detach().numpy()
        self.peep_o = cell.peep_o.detach().numpy()
        proj = tower.proj  # nn.Linear(H, D), or nn.Identity when out_dim = 0
        self.proj_w = proj.weight.detach().numpy() if isinstance(proj, nn.Linear) else None  # (D, H)
        self.proj_b = proj.bias.detach().numpy() if isinstance(proj, nn.Linear) and proj.bias is not None else None

    def encode(self, words: Sequence[Sequence[int]]) -> np.ndarray:
        H = self.H
        h = np.zeros(H, dtype=np.float32)
        c = np.zeros(H, dtype=np.float32)
        states = []
        if words:
            # Word vectors = sum of their n-gram embeddings (EmbeddingBag "sum"); an empty word is 0.
            x = np.stack([self.emb[list(g)].sum(axis=0) if g else np.zeros(self.emb.shape[1], np.float32)
                          for g in words])  # (T, E)
            gx = x @ self.w_ih.T + self.bias  # (T, 4H): every step's input term in one matmul
            for t in range(len(words)):
                z = gx[t] + self.w_hh @ h  # (4H,) in torch's gate order i, f, g, o
                i = _sigmoid(z[:H] + self.peep_i * c)
                f = _sigmoid(z[H : 2 * H] + self.peep_f * c)
                c = f * c + i * np.tanh(z[2 * H : 3 * H])
                o = _sigmoid(z[3 * H :] + self.peep_o * c)  # the output gate sees the new cell
                h = o * np.tanh(c)
                if self.pooling != "last":
                    states.append(h)
        if self.pooling == "max" and states:
            h = np.max(states, axis=0)
        elif self.pooling == "mean" and states:
            h = np.mean(states, axis=0)
        elif self.pooling != "last":
            h = np.zeros(H, dtype=np.float32)
        y = h if self.proj_w is None else self.proj_w @ h + (self.proj_b if self.proj_b is not None else 0.0)
        return (y / max(float(np.linalg.norm(y)), 1e-12)).astype(np.float32)  # F.normalize's eps
