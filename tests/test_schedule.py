"""The learning-rate and teacher schedules' arithmetic (models/schedule.py); its use in training: test_training.py."""

import math

import pytest

from models.schedule import lr_factor, progress, teacher_factor


def test_constant_is_the_peak_throughout():
    assert {lr_factor("constant", p) for p in (0.0, 0.3, 1.0, 2.0)} == {1.0}


def test_cosine_falls_from_the_peak_to_zero_and_clamps():
    assert lr_factor("cosine", 0.0) == 1.0
    assert lr_factor("cosine", 0.5) == pytest.approx(0.5)
    assert lr_factor("cosine", 1.0) == pytest.approx(0.0, abs=1e-12)
    ps = [i / 100 for i in range(101)]
    fs = [lr_factor("cosine", p) for p in ps]
    assert all(a >= b for a, b in zip(fs, fs[1:], strict=False)) and fs[10] > 0.9 and fs[90] < 0.1
    assert lr_factor("cosine", -1.0) == 1.0 and lr_factor("cosine", 5.0) == pytest.approx(0.0, abs=1e-12)


def test_progress_is_the_further_of_steps_and_time():
    assert progress(10, 100, 30.0, 60.0) == 0.5  # time ahead
    assert progress(80, 100, 30.0, 60.0) == 0.8  # steps ahead
    assert progress(10, 100, 30.0, math.inf) == 0.1  # no time bound
    assert progress(10, 0, 15.0, 60.0) == 0.25  # no planned steps
    assert progress(10, 0, 15.0, math.inf) == 0.0


def test_an_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="cosin"):
        lr_factor("cosin", 0.5)  # type: ignore[arg-type]


def test_the_teacher_fades_over_the_runs_last_share():
    assert {teacher_factor(0.0, p) for p in (0.0, 0.9, 1.0)} == {1.0}  # off: full weight throughout
    assert teacher_factor(0.25, 0.5) == 1.0 and teacher_factor(0.25, 0.75) == 1.0  # before the fade
    assert teacher_factor(0.25, 0.875) == pytest.approx(0.5)  # halfway through it
    assert teacher_factor(0.25, 1.0) == 0.0 and teacher_factor(0.25, 1.5) == 0.0  # clamped at the end
    assert teacher_factor(1.0, 0.0) == 1.0 and teacher_factor(1.0, 0.4) == pytest.approx(0.6)  # the whole run
    with pytest.raises(ValueError, match="between 0 and 1"):
        teacher_factor(1.5, 0.5)
