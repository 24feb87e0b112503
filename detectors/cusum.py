"""Page's CUSUM on a log-likelihood ratio, for a Bernoulli rate and for a standardised mean.

Both accumulate ``S = max(0, S + llr)`` and signal when ``S > threshold``. Because the increment
is a true log-likelihood ratio, Lorden's bound gives an in-control average run length of at
least ``exp(threshold)`` observations, so a threshold of ``ln(ARL0)`` keeps the false-alarm
rate at most ``1 / ARL0`` per observation (:func:`threshold_for`).

>>> cusum = BernoulliCusum(factor=0.7, threshold=5.0).reference(0.6)
>>> next(i for i in range(100) if cusum.update(False).drift_detected)   # 0.6 -> 0.0
13
"""

from __future__ import annotations

import math

__all__ = ["BernoulliCusum", "GaussianCusum", "threshold_for"]

_EPS = 1e-6


def threshold_for(arl0: float) -> float:
    """CUSUM threshold whose in-control run length is at least ``arl0`` (Lorden's bound).

    >>> round(threshold_for(1e8), 2)
    18.42
    """
    if arl0 <= 1:
        raise ValueError(f"arl0 must be > 1, got {arl0!r}")
    return math.log(arl0)


class BernoulliCusum:
    """Detects a rate moving from ``p0`` to ``factor × p0``.

    ``factor < 1`` watches for a fall (a favourable rate, e.g. cheap-tier share), ``factor > 1``
    for a rise (an adverse rate, e.g. preemptions). ``p0`` may be moved with :meth:`reference`
    as the baseline evolves; the statistic is kept.
    """

    __slots__ = ("_fail", "_success", "drift_detected", "factor", "p0", "statistic", "threshold")

    def __init__(self, factor: float, threshold: float) -> None:
        if not (factor > 0 and factor != 1 and math.isfinite(factor)):
            raise ValueError(f"factor must be a positive number other than 1, got {factor!r}")
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold!r}")
        self.factor = factor
        self.threshold = threshold
        self.statistic = 0.0
        self.drift_detected = False
        self.p0 = 0.5
        self._success = 0.0
        self._fail = 0.0
        self.reference(0.5)

    def reference(self, p0: float) -> BernoulliCusum:
        """Set the in-control rate (clamped to keep both hypotheses inside (0, 1))."""
        p0 = min(max(p0, _EPS), 1 - _EPS)
        p1 = min(max(p0 * self.factor, _EPS), 1 - _EPS)
        self.p0 = p0
        self._success = math.log(p1 / p0)
        self._fail = math.log((1 - p1) / (1 - p0))
        return self

    def update(self, x: bool) -> BernoulliCusum:
        """Add one observation (True = the event happened)."""
        s = self.statistic + (self._success if x else self._fail)
        self.statistic = s if s > 0.0 else 0.0
        self.drift_detected = self.statistic > self.threshold
        return self

    def reset(self) -> BernoulliCusum:
        """Start accumulating afresh (after a signal)."""
        self.statistic = 0.0
        self.drift_detected = False
        return self


class GaussianCusum:
    """Two-sided CUSUM for a shift of ``shift`` standard deviations in a standardised stream.

    Each side's increment ``±z − shift/2`` is, times ``shift``, the log-likelihood ratio of
    N(±shift, 1) against N(0, 1); inputs are clipped to ``±clip`` so that one wild value cannot
    signal alone. ``direction`` is +1 or −1 after a signal.

    >>> c = GaussianCusum(shift=1.0, threshold=8.0)
    >>> for z in [0.1, -0.3, 0.2] * 5 + [2.0] * 6:
    ...     _ = c.update(z)
    >>> c.drift_detected, c.direction
    (True, 1)
    """

    __slots__ = ("_half", "clip", "direction", "down", "drift_detected", "shift", "threshold",
                 "up")

    def __init__(self, shift: float, threshold: float, clip: float = 4.0) -> None:
        if not shift > 0:
            raise ValueError(f"shift must be > 0, got {shift!r}")
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold!r}")
        if not clip > 0:
            raise ValueError(f"clip must be > 0, got {clip!r}")
        self.shift = shift
        self.threshold = threshold
        self.clip = clip
        self._half = shift / 2.0
        self.up = 0.0
        self.down = 0.0
        self.direction = 0
        self.drift_detected = False

    def update(self, z: float) -> GaussianCusum:
        """Add one standardised observation."""
        z = self.clip if z > self.clip else -self.clip if z < -self.clip else z
        up = self.up + self.shift * (z - self._half)
        down = self.down + self.shift * (-z - self._half)
        self.up = up if up > 0.0 else 0.0
        self.down = down if down > 0.0 else 0.0
        if self.up > self.threshold:
            self.drift_detected, self.direction = True, 1
        elif self.down > self.threshold:
            self.drift_detected, self.direction = True, -1
        else:
            self.drift_detected = False
        return self

    @property
    def statistic(self) -> float:
        """The larger of the two sides."""
        return max(self.up, self.down)

    def reset(self) -> GaussianCusum:
        """Start accumulating afresh (after a signal)."""
        self.up = self.down = 0.0
        self.direction = 0
        self.drift_detected = False
        return self
