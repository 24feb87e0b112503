"""Is a gap compounding, or did it shift once? A growth test on the gap after a drift alarm.

Method, in sentences a reviewer can follow:

1. Once a group's rate has drifted, its *shortfall* is measured over ``windows`` consecutive
   windows of ``window`` of its events, from the drift test's estimate of the change point (the
   last time its CUSUM stood at zero) on. The shortfall is how much worse its rate is than its
   own reference (the rate it would have if its pre-change relation to the other groups held).
2. The drift is called *amplification* when the mean shortfall of the later half of the
   windows exceeds that of the earlier half by at least ``min_growth``. The excess must be
   significant at one-sided level ``alpha`` under a z-test. The test's variance is each
   window's binomial variance times the group's overdispersion ``φ``, the same ``φ`` the drift
   test uses.

A step change moves the gap once, so after the alarm both halves sit at the same level: the
test stays quiet, with a false-positive rate of at most ``alpha`` by construction. A feedback
loop keeps widening the gap, so the later half is worse. Comparing halves rather than fitting
a line keeps the test honest when a loop saturates (the gap stops growing once the group gets
nothing left).

>>> trend = GapTrend(window=50, windows=4, alpha=0.01, min_growth=0.05)
>>> for shortfall in (0.10, 0.20, 0.30, 0.40):           # widening by 10 points a window
...     _ = trend.update_batch(shortfall, 50, unit_variance=0.25)
>>> trend.done, trend.amplifying, round(trend.growth, 2), round(trend.z, 2)
(True, True, 0.2, 2.83)
"""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = ["GapTrend"]


class GapTrend:
    """Collects the shortfall per window and compares the later half with the earlier one."""

    __slots__ = ("_n", "_variance", "_worse", "alpha", "amplifying", "done", "gaps",
                 "growth", "min_growth", "ns", "variances", "window", "windows", "z")

    def __init__(self, window: int, windows: int, alpha: float, min_growth: float) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if windows < 2 or windows % 2:
            raise ValueError(f"windows must be an even number >= 2, got {windows}")
        if not 0 < alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}")
        if min_growth < 0:
            raise ValueError(f"min_growth must be >= 0, got {min_growth!r}")
        self.window = window
        self.windows = windows
        self.alpha = alpha
        self.min_growth = min_growth
        self.gaps: list[float] = []
        self.ns: list[int] = []
        self.variances: list[float] = []
        self._n = 0
        self._worse = 0.0
        self._variance = 0.0
        self.done = False
        self.amplifying = False
        self.growth = 0.0
        self.z = 0.0

    @property
    def slope(self) -> float:
        """Average widening per window (growth between the halves' centres)."""
        return self.growth / (self.windows / 2)

    def update_batch(self, worse: float, n: int, unit_variance: float) -> GapTrend:
        """``n`` events whose rate was ``worse`` than expected, each with that variance."""
        if self.done or n <= 0:
            return self
        self._worse += worse * n
        self._variance += unit_variance * n
        self._n += n
        if self._n >= self.window:
            self.gaps.append(self._worse / self._n)
            self.variances.append(self._variance / self._n / self._n)
            self.ns.append(self._n)
            self._n = 0
            self._worse = self._variance = 0.0
            if len(self.gaps) == self.windows:
                self._test()
        return self

    def _test(self) -> None:
        half = self.windows // 2
        first, second = self.gaps[:half], self.gaps[half:]
        self.growth = sum(second) / half - sum(first) / half
        variance = sum(self.variances) / (half * half)
        self.z = self.growth / math.sqrt(variance) if variance > 0 else math.inf
        critical = NormalDist().inv_cdf(1 - self.alpha)
        self.amplifying = self.z > critical and self.growth >= self.min_growth
        self.done = True
