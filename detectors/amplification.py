"""Is a gap compounding, or did it shift once? A growth test on the gap after a drift alarm.

Method, in sentences a reviewer can follow:

1. A group's *shortfall* is how much worse its rate is than its own reference: the rate it
   would have if its pre-change relation to the other groups held.
2. When the drift test alarms, the shortfall over the evidence that raised the alarm (the
   batches since its CUSUM last stood at zero, its estimate of the change point) is the
   *level at detection*.
3. The shortfall is then measured over the group's next ``window`` observations.
4. The drift is called *amplification* when that later shortfall exceeds the level at
   detection by at least ``min_growth``. The excess must be significant at one-sided level
   ``alpha`` under a z-test whose variance is each part's binomial variance times the group's
   overdispersion ``φ``.

A step change moves the gap once: after the change point the shortfall stays at the level it
was detected at, so the test stays quiet (false-positive rate at most ``alpha``, plus the
little that the change-point estimate can blur). A feedback loop keeps widening the gap after
it was detected, even when it soon saturates (the group has nothing left to lose), so the later
shortfall is larger.

>>> trend = GapTrend(window=300, alpha=0.01, min_growth=0.05)
>>> trend.start([(0.15, 100, 0.25), (0.2, 100, 0.25)])   # detected at a 17.5-point shortfall
>>> for _ in range(6):
...     _ = trend.update_batch(0.35, 50, 0.25)           # then 35 points
>>> trend.done, trend.amplifying, round(trend.growth, 3), round(trend.z, 2)
(True, True, 0.175, 3.83)
"""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = ["GapTrend"]


class GapTrend:
    """Compares the shortfall after a drift alarm with the shortfall that raised it."""

    __slots__ = ("_n", "_variance", "_worse", "after", "alpha", "amplifying", "before",
                 "before_n", "before_variance", "done", "growth", "min_growth", "window", "z")

    def __init__(self, window: int, alpha: float, min_growth: float) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if not 0 < alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}")
        if min_growth < 0:
            raise ValueError(f"min_growth must be >= 0, got {min_growth!r}")
        self.window = window
        self.alpha = alpha
        self.min_growth = min_growth
        self.before = 0.0
        self.before_n = 0
        self.before_variance = 0.0
        self.after = 0.0
        self._n = 0
        self._worse = 0.0
        self._variance = 0.0
        self.done = False
        self.amplifying = False
        self.growth = 0.0
        self.z = 0.0

    @property
    def growth_so_far(self) -> float | None:
        """The shortfall since detection minus the shortfall at detection, over the
        observations seen so far (None before the first); final once :attr:`done`."""
        if self.done:
            return self.growth
        return self._worse / self._n - self.before if self._n else None

    def start(self, batches: list[tuple[float, int, float]]) -> None:
        """The level at detection: ``(shortfall, n, unit variance)`` of the alarm's batches."""
        n = sum(b[1] for b in batches)
        if n:
            self.before = sum(w * k for w, k, _ in batches) / n
            self.before_variance = sum(v * k for _, k, v in batches) / n / n
        self.before_n = n

    def update_batch(self, worse: float, n: int, unit_variance: float) -> GapTrend:
        """``n`` later observations whose rate was ``worse`` than expected by that much."""
        if self.done or n <= 0:
            return self
        self._worse += worse * n
        self._variance += unit_variance * n
        self._n += n
        if self._n >= self.window:
            self.after = self._worse / self._n
            variance = self._variance / self._n / self._n + self.before_variance
            self.growth = self.after - self.before
            self.z = self.growth / math.sqrt(variance) if variance > 0 else math.inf
            critical = NormalDist().inv_cdf(1 - self.alpha)
            self.amplifying = (self.before_n > 0 and self.z > critical
                               and self.growth >= self.min_growth)
            self.done = True
        return self
