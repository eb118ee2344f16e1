"""The DSSM objective: softmax over γ·cos(q, d) of the relevant document against negatives."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def dssm_loss(q: Tensor, d: Tensor, gamma: Tensor | float, exclude: Tensor | None = None) -> Tensor:
    """Mean of −log P(d⁺ | q) with P = softmax over candidates of γ·cos(q, d).

    q (B, D) and d (N, D) are unit vectors; d[i] is query i's relevant document for i < B, the rest
    (in-batch positives of other queries and sampled negatives) are its negatives. ``exclude`` (B, N)
    marks candidates that must not count as negatives of query i (another document relevant to it, or
    the same document sampled twice); the diagonal is never excluded.
    """
    B = q.shape[0]
    logits = gamma * (q @ d.t())  # (B, N)
    if exclude is not None:
        exclude = exclude.clone()
        exclude[torch.arange(B), torch.arange(B)] = False
        logits = logits.masked_fill(exclude, float("-inf"))
    return F.cross_entropy(logits, torch.arange(B))
