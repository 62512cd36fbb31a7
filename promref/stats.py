"""The statistics behind an accuracy figure: its confidence interval, and the paired test
that says whether two models differ on the same images.  scipy does the arithmetic.

* :func:`accuracy_interval`: the Clopper-Pearson ("exact") interval of a binomial
  proportion -- conservative, valid for any count, and what a reader expects next to a
  top-1 on a fixed test set.
* :func:`mcnemar`: McNemar's test on paired predictions, in its **exact** form: under the
  null hypothesis the discordant images (one model right, the other wrong) split 50/50,
  so the two-sided p-value is a binomial test of ``b`` successes in ``b + c`` trials
  (``scipy.stats.binomtest``).  No chi-squared approximation, so small counts are fine.
"""
from typing import NamedTuple

import numpy as np

from .errors import PromrefError, ShapeError


class Interval(NamedTuple):
    """An accuracy with its confidence interval (fractions in [0, 1])."""
    accuracy: float
    low: float
    high: float
    confidence: float


class McNemar(NamedTuple):
    """Paired comparison of models A and B on the same images.

    only_a: images A gets right and B wrong; only_b: the reverse; p_value: two-sided,
    exact (binomial) McNemar test.
    """
    only_a: int
    only_b: int
    both: int
    neither: int
    p_value: float


def accuracy_interval(correct, total, confidence=0.95):
    """Clopper-Pearson interval of ``correct`` successes in ``total`` trials -> :class:`Interval`."""
    from scipy.stats import binomtest
    if isinstance(correct, bool) or isinstance(total, bool):
        raise PromrefError("correct and total must be counts, not booleans")
    correct, total = int(correct), int(total)
    if total < 1 or not 0 <= correct <= total:
        raise PromrefError(f"need 0 <= correct <= total and total >= 1, got {correct} of {total}")
    if not 0 < confidence < 1:
        raise PromrefError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    ci = binomtest(correct, total).proportion_ci(confidence_level=confidence, method="exact")
    return Interval(correct / total, float(ci.low), float(ci.high), confidence)


def mcnemar(predictions_a, predictions_b, labels):
    """Exact McNemar test of two models' predictions int [N] against ``labels`` int [N]."""
    from scipy.stats import binomtest
    a, b, y = (np.asarray(v) for v in (predictions_a, predictions_b, labels))
    if a.ndim != 1 or a.shape != b.shape or a.shape != y.shape or a.size == 0:
        raise ShapeError(f"predictions and labels must be 1-D of one non-zero length, got "
                         f"{a.shape}, {b.shape}, {y.shape}")
    right_a, right_b = a == y, b == y
    only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    discordant = only_a + only_b
    p = 1.0 if discordant == 0 else float(binomtest(only_a, discordant, 0.5).pvalue)
    return McNemar(only_a, only_b, int(np.sum(right_a & right_b)), int(np.sum(~right_a & ~right_b)), p)


def format_interval(interval):
    """``88.34% (95% CI 87.70-88.96%, Clopper-Pearson)``."""
    return (f"{100 * interval.accuracy:.2f}% ({100 * interval.confidence:.0f}% CI {100 * interval.low:.2f}-"
            f"{100 * interval.high:.2f}%, Clopper-Pearson)")
