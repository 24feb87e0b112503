"""Fairness arithmetic: selection rates, parity figures and confidence intervals.

Definitions (ENGINEERING.md §5), over groups that reach the minimum support:

* parity difference = largest group rate − smallest group rate;
* parity ratio = smallest group rate / largest group rate (1.0 when every rate is 0);
* the four-fifths rule flags a favourable-outcome ratio below 0.8.

These are fairlearn's ``demographic_parity_difference`` and ``demographic_parity_ratio``
applied to the per-group rates.

>>> figures = parity({"a": 0.6, "b": 0.3, "c": 0.5})
>>> round(figures.difference, 6), round(figures.ratio, 6), figures.min_group, figures.max_group
(0.3, 0.5, 'b', 'a')
>>> lo, hi = wilson_interval(8, 10, z=1.959964)
>>> round(lo, 4), round(hi, 4)
(0.4902, 0.9433)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist

__all__ = ["ParityFigures", "katz_ratio", "parity", "wilson_interval", "z_for_confidence"]


@dataclass(frozen=True, slots=True)
class ParityFigures:
    """Parity difference and ratio over a set of group rates."""

    difference: float
    ratio: float
    min_group: str
    max_group: str
    groups_compared: int


def parity(rates: Mapping[str, float]) -> ParityFigures:
    """Parity figures of ``rates`` (group → rate); needs at least one group.

    Ties are broken by group name so that the result is deterministic.
    """
    if not rates:
        raise ValueError("parity needs at least one group rate")
    ordered = sorted(rates.items(), key=lambda item: (item[1], item[0]))
    min_group, low = ordered[0]
    max_group, high = ordered[-1]
    ratio = 1.0 if high == 0 else low / high
    return ParityFigures(high - low, ratio, min_group, max_group, len(ordered))


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


def z_for_confidence(confidence: float) -> float:
    """Two-sided standard-normal quantile for a confidence level in (0, 1).

    >>> round(z_for_confidence(0.95), 4)
    1.96
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (``(0, 1)`` when ``n`` is 0)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))
