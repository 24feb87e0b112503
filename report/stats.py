"""The report's two pieces of statistics beyond Wilson intervals (:mod:`detectors.fairness`):
Katz's interval for a ratio of proportions, and a weighted least-squares trend whose error
allows for overdispersion. Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["katz_ratio", "weighted_trend"]


def katz_ratio(x1: int, n1: int, x2: int, n2: int, z: float) -> tuple[float, float, float]:
    """Ratio of two proportions x1/n1 over x2/n2 with Katz's log interval.

    When a count is 0 the interval is computed with 0.5 added to each success count and 1 to
    each total (Haldane's correction for the log of a ratio); the point stays the observed
    ratio, and with x1 = 0 the interval starts at 0, so the point is always inside it.

    >>> [round(v, 3) for v in katz_ratio(50, 100, 100, 100, 1.96)]
    [0.5, 0.411, 0.608]
    >>> [round(v, 3) for v in katz_ratio(0, 30, 1, 100, 1.96)]
    [0.0, 0.0, 25.992]
    """
    if n1 == 0 or n2 == 0 or x2 == 0:
        return math.nan, 0.0, math.inf
    ratio = (x1 / n1) / (x2 / n2)
    a, b, m1, m2 = float(x1), float(x2), float(n1), float(n2)
    if x1 == 0:
        a, b, m1, m2 = a + 0.5, b + 0.5, m1 + 1.0, m2 + 1.0
    p1, p2 = a / m1, b / m2
    se = math.sqrt(max(0.0, (1 - p1) / a + (1 - p2) / b))
    centre = math.log(p1 / p2)
    low = 0.0 if x1 == 0 else math.exp(centre - z * se)
    return ratio, low, math.exp(centre + z * se)


def weighted_trend(xs: Sequence[float], ys: Sequence[float], ws: Sequence[float],
                   at: float) -> tuple[float, float, float] | None:
    """Slope of ``ys`` on ``xs`` by weighted least squares, its standard error and the fitted
    value at ``at``; None when the ``xs`` do not vary.

    The error is the weighted one times the fit's own overdispersion when it exceeds 1
    (the residuals' weighted sum of squares over its degrees of freedom).

    >>> [round(v, 3) for v in weighted_trend([0, 1, 2, 3], [0.0, 1.0, 2.0, 3.0], [1] * 4, 4)]
    [1.0, 0.447, 4.0]
    """
    sw = sum(ws)
    mx = sum(w * x for w, x in zip(ws, xs, strict=True)) / sw
    my = sum(w * y for w, y in zip(ws, ys, strict=True)) / sw
    sxx = sum(w * (x - mx) ** 2 for w, x in zip(ws, xs, strict=True))
    if sxx <= 0:
        return None
    slope = sum(w * (x - mx) * (y - my) for w, x, y in zip(ws, xs, ys, strict=True)) / sxx
    residuals = [y - (my + slope * (x - mx)) for x, y in zip(xs, ys, strict=True)]
    phi = max(1.0, sum(w * r * r for w, r in zip(ws, residuals, strict=True)) / (len(xs) - 2))
    return slope, math.sqrt(phi / sxx), my + slope * (at - mx)
