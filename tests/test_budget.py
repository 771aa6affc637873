"""training.budget: the resumed run that fits a wall-clock budget after a timed first epoch."""

from __future__ import annotations

import pytest

from training.budget import Plan, main, plan
from training.module import lr_factor


def test_the_h200_run_of_the_readme():
    # first epoch of 500 batches in 90 s, 231 s left: 1,500 batches, decayed from 1,000
    assert plan(90, 231, 500) == Plan(max_epochs=3, decay_start=1000, decay_steps=500)


@pytest.mark.parametrize("first", [20.0, 45.0, 90.0, 400.0])
@pytest.mark.parametrize("left", [-10.0, 60.0, 231.0, 3600.0, 86400.0])
@pytest.mark.parametrize("bpe", [100, 500, 1000])
def test_plan_fits_the_time_left_and_ends_with_the_decay(first, left, bpe):
    p = plan(first, left, bpe, decay_fraction=0.35)
    assert p.total == p.max_epochs * bpe and p.max_epochs >= 2
    assert bpe <= p.decay_start < p.total and p.decay_steps >= bpe
    rate = bpe / max(first - 15, first / 2)
    if p.max_epochs > 2:  # more than the one epoch always planned: it fits, with the start
        assert 15 + (p.total - bpe) / rate <= left
    if p.total >= 10 * bpe:  # the decay is its fraction of the run, to a rounding
        assert abs(p.decay_steps - 0.35 * p.total) <= 50
    # the rate is constant until decay_start and reaches 0 at the last batch
    assert lr_factor(p.decay_start - 1, 1, p.decay_start, p.decay_steps) == 1.0
    assert lr_factor(p.total, 1, p.decay_start, p.decay_steps) == 0.0


def test_a_faster_node_plans_more_batches():
    assert plan(40, 600, 500).total > plan(90, 600, 500).total


@pytest.mark.parametrize("kwargs", [dict(first=0), dict(batches_per_epoch=0),
                                    dict(decay_fraction=0.0), dict(decay_fraction=1.5)])
def test_bad_arguments_name_the_field(kwargs):
    args = dict(first=90, left=231, batches_per_epoch=500) | kwargs
    with pytest.raises(ValueError, match="plan: first="):
        plan(**args)


def test_main_prints_epochs_and_decay(capsys):
    main(["--first", "90", "--left", "231", "--batches_per_epoch", "500"])
    assert capsys.readouterr().out.split() == ["3", "1000", "500"]
