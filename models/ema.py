"""An exponential moving average of the network's weights (Polyak averaging), for evaluation and saving.

With a constant learning rate the weights keep wandering around the loss's floor from step to step, and
every dev evaluation scores one point of that walk (medquad dev moves by ±0.01 from one epoch to the
next). The average of the recent steps sits nearer the middle of the region they walk in, which tends to
generalise better than any one point of it (Polyak and Juditsky, 1992; Izmailov et al., 2018, SWA).
Training keeps stepping the live weights; only evaluations and the saved model see the average.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class WeightAverage:
    """EMA of ``model``'s trainable parameters: avg ← avg + (1 − β)(w − avg) after every step.

    β warms up as min(decay, (1 + n) / (c + n)) after n updates (c = ``warmup``; ``--ema-warmup``), so the
    first steps' random weights do not linger in the average for thousands of steps. Until β reaches
    ``decay`` (n ≈ (c − 1) / (1 − decay) − c: ~4,500 updates for 0.998 and c 10, more than medquad's 30
    epochs of ~99 steps) the average spans about the last 1 / (c − 1) of the steps taken so far
    (1 / (1 − β) = (c + n) / (c − 1)); with c 10, ~1.2 epochs at epoch 11, ~3 at epoch 27.
    Frozen parameters (a frozen n-gram table) and buffers are not copied: they are the same in the average
    as in the live model.
    """

    def __init__(self, model: nn.Module, decay: float, warmup: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"the average's decay must lie between 0 and 1, not {decay}")
        # c ≤ 1 would make β ≥ 1 at the first step (the average would never move); c = inf keeps β at 0.
        if not (math.isfinite(warmup) and warmup > 1):
            raise ValueError(f"the average's warm-up constant must be above 1, not {warmup}")
        self.decay, self.warmup = decay, warmup
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self.params]
        self.updates = 0

    @torch.no_grad()
    def update(self) -> None:
        beta = min(self.decay, (1 + self.updates) / (self.warmup + self.updates))
        for s, p in zip(self.shadow, self.params, strict=True):
            s.lerp_(p, 1 - beta)
        self.updates += 1

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Inside: the model holds the averaged weights; after: the live ones again (training goes on)."""
        with torch.no_grad():
            live = [p.clone() for p in self.params]
            for p, s in zip(self.params, self.shadow, strict=True):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, w in zip(self.params, live, strict=True):
                    p.copy_(w)
