import math

import pytest

from advnets.report.extrapolation import foresight_error, rise_to_schedule_end


def spent(epoch: int) -> float:
    """The paper's schedule: 500 steps an epoch, the rate divided by 1.000004 after each."""
    return -math.expm1(-epoch * 500 * math.log(1.000004))


def curve(score, last=2000, every=5):
    return [[epoch, score(spent(epoch))] for epoch in range(every, last + 1, every)]


def test_on_a_straight_line_the_rise_is_what_the_rest_of_the_sum_adds():
    line = curve(lambda share: 100 + 80 * share)
    assert rise_to_schedule_end(line, spent, 1990) == pytest.approx(80 * (1 - spent(1990)), rel=1e-6)
    assert foresight_error(line, spent) == pytest.approx(0, abs=1e-6)


def test_the_rise_follows_the_second_half_of_the_run_only():
    kinked = curve(lambda share: 100 + 80 * share + 200 * min(share - spent(1000), 0))  # steeper before 1000
    assert rise_to_schedule_end(kinked, spent, 1990) == pytest.approx(80 * (1 - spent(1990)), rel=1e-6)


def test_the_foresight_fits_the_second_quarter_and_checks_the_last_fifty_epochs():
    kinked = curve(lambda share: 100 + 80 * share + 200 * min(share - spent(500), 0))  # steeper before 500
    kinked[-1][1] += 10  # one of the last 10 scored epochs (every 5 of the last 50) scored 10 more
    assert foresight_error(kinked, spent) == pytest.approx(-10 / 10, abs=1e-6)


def test_a_selected_epoch_before_the_fitted_half_is_refused():
    with pytest.raises(ValueError, match="before the fitted second half"):
        rise_to_schedule_end(curve(lambda share: 100 + 80 * share), spent, 900)


def test_the_rise_starts_from_the_line_not_from_the_selected_score():
    lucky = curve(lambda share: 100 + 80 * share)
    lucky[-3][1] += 5  # epoch 1990 scored high by chance, which is why the selection kept it
    rise = rise_to_schedule_end(lucky, spent, 1990)
    assert rise == pytest.approx(80 * (1 - spent(1990)), abs=0.1)  # one point barely moves the line
    from_lucky_score = 100 + 80 - lucky[-3][1]
    assert rise > 1.0 > 0 > from_lucky_score


def test_a_curve_that_bends_upward_late_makes_the_lines_foresight_fall_short():
    bending = curve(lambda share: 100 + 80 * share + 400 * max(share - 0.9, 0) ** 2)
    assert foresight_error(bending, spent) < -0.5


def test_a_parabola_follows_a_curve_that_bends_evenly_where_a_line_cannot():
    bending = curve(lambda share: 100 + 80 * share + 300 * share**2)
    assert foresight_error(bending, spent, degree=2) == pytest.approx(0, abs=1e-4)
    assert rise_to_schedule_end(bending, spent, 2000, degree=2) == pytest.approx(
        80 * (1 - spent(2000)) + 300 * (1 - spent(2000) ** 2), rel=1e-4
    )
    assert rise_to_schedule_end(bending, spent, 2000) < rise_to_schedule_end(bending, spent, 2000, degree=2)


def test_too_few_scored_epochs_are_refused():
    with pytest.raises(ValueError, match="degree-1 fit needs 3 scored epochs"):
        rise_to_schedule_end([[1000, 200.0], [2000, 210.0]], spent, 2000)
    with pytest.raises(ValueError, match="degree-2 fit needs 4 scored epochs"):
        rise_to_schedule_end([[1000, 200.0], [1500, 205.0], [2000, 210.0]], spent, 2000, degree=2)
