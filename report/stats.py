"""The report's statistics beyond :mod:`detectors.fairness` (Wilson intervals, and Katz's
interval for a ratio of proportions, which the metrics share): a weighted least-squares trend
whose error allows for overdispersion. Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from detectors.fairness import katz_ratio

__all__ = ["katz_ratio", "weighted_trend"]


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
