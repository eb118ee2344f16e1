"""The learning rate over a run: a multiplier of ``--lr`` from the run's progress.

A run here is bounded by wall clock (``--max-minutes``) as often as by epochs, so progress is whichever
is further along: the share of the planned steps taken, or the share of the training time spent. With a
time bound the rate of each step therefore depends on the clock: the same seed gives the same weights
only when the steps' share stays ahead (no time bound, or one far from binding).
"""

from __future__ import annotations

import math
from typing import Literal

LrSchedule = Literal["constant", "cosine"]


def lr_factor(schedule: LrSchedule, progress: float) -> float:
    """The learning rate's share of its peak at ``progress`` (0 at the first step, 1 at the run's end):
    1 throughout for "constant"; for "cosine", half a cosine from 1 down to 0 (Loshchilov & Hutter, 2017,
    without restarts), so the last epochs take small steps and the kept epoch is less a matter of where
    a large step happened to land."""
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"unknown learning-rate schedule {schedule!r} (have: constant, cosine)")
    p = min(max(progress, 0.0), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * p))


def teacher_factor(fade: float, progress: float) -> float:
    """The teacher terms' share of their weights at ``progress``: 1 until the run's last ``fade`` of its
    progress, then a straight line down to 0 at its end (``fade`` 0: 1 throughout). Early steps learn the
    teacher's general geometry; the late ones, where the kept epoch usually lies, answer more and more to
    the labels, which the teacher contradicts on a share of the rows. (Progress is read before each step
    and the run ends before it reaches 1, so the last step still carries a little of the teacher.)"""
    if not 0.0 <= fade <= 1.0:
        raise ValueError(f"the teacher's fade must be a share of the run between 0 and 1, not {fade}")
    if fade == 0.0:
        return 1.0
    return min(1.0, max(0.0, (1.0 - progress) / fade))


def progress(step: int, total_steps: int, spent_s: float, budget_s: float) -> float:
    """How far along a run is: the larger of its steps' share and its time's share (either may be
    unbounded: ``total_steps`` 0 or ``budget_s`` infinite count as no bound)."""
    by_steps = step / total_steps if total_steps > 0 else 0.0
    by_time = spent_s / budget_s if budget_s > 0 and math.isfinite(budget_s) else 0.0
    return max(by_steps, by_time)
