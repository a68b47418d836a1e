"""Where a long run's validation score heads once its learning rate's decay is spent.

The official code divides the learning rate by lr_decay after every step and has no stopping rule,
so the rates a run can still take add up to a finite amount (`schedule.learning_rate_spent`).
Against the share of that sum a run has taken, the late validation scores of the paper's
configuration lie close to a straight line, bending slightly upward. Carried to share 1, a line
(degree 1) and a parabola (degree 2) through them estimate what training until the decay is spent
would add to the selected generator. They are fits, not measurements: `foresight_error` makes the
same fit on an earlier stretch of the run and checks it against the run's last scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

# (epoch, validation score) pairs in epoch order, as `advnets variants` stores a seed's curve.
Curve = Sequence[Sequence[float]]
Spent = Callable[[int], float]  # epoch -> share of the learning rate's sum taken by its end

TAIL_EPOCHS = 50  # the run's last scores, averaged, that `foresight_error` checks against


def _fit(curve: Curve, spent: Spent, first: float, last: float, degree: int) -> np.poly1d:
    """Least-squares polynomial of the scores of epochs first..last against their shares."""
    points = [(spent(int(epoch)), score) for epoch, score in curve if first <= epoch <= last]
    if len(points) < degree + 2:
        raise ValueError(
            f"a degree-{degree} fit needs {degree + 2} scored epochs between {first:g} and {last:g}, "
            f"got {len(points)}"
        )
    shares, scores = zip(*points, strict=True)
    return np.poly1d(np.polyfit(shares, scores, degree))


def rise_to_schedule_end(curve: Curve, spent: Spent, selected_epoch: int, degree: int = 1) -> float:
    """How much the fit through the second half of the run rises from the selected epoch's share
    to share 1. Measured from the fit, not from the selected score, which the selection chose for
    being high. A selected epoch before that half is refused: the fit would be carried backwards."""
    last = curve[-1][0]
    if selected_epoch < last / 2:
        raise ValueError(f"epoch {selected_epoch} lies before the fitted second half of the run (from {last / 2:g})")
    fit = _fit(curve, spent, last / 2, last, degree)
    return float(fit(1.0) - fit(spent(selected_epoch)))


def foresight_error(curve: Curve, spent: Spent, degree: int = 1) -> float:
    """The same fit one step earlier: the fit through the run's second quarter, carried to its
    last TAIL_EPOCHS epochs, minus their mean score (negative: the fit fell short). For a run that
    has taken over 3/4 of the sum, the share this fit is carried over is longer than
    `rise_to_schedule_end`'s, so it tests that fit harshly."""
    last = curve[-1][0]
    fit = _fit(curve, spent, last / 4, last / 2, degree)
    tail = [(epoch, score) for epoch, score in curve if epoch > last - TAIL_EPOCHS]
    return float(np.mean([fit(spent(int(epoch))) - score for epoch, score in tail]))
