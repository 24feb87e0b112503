"""Page's CUSUM on log-likelihood-ratio increments, and the increments placewatch feeds it.

The statistic accumulates ``S = max(0, S + llr)`` and signals when ``S > threshold``. Because
each increment is a log-likelihood ratio, Lorden's bound gives an in-control average run length
of at least ``exp(threshold)`` steps, so a threshold of ``ln(ARL0)`` keeps the false-alarm rate
at most ``1 / ARL0`` per step (:func:`threshold_for`).

>>> cusum = Cusum(threshold=5.0)          # batch means of 25 events, N(0, 1) each
>>> shifted = [gaussian_llr(1.0, mu0=0.0, mu1=1.0, variance=1 / 25)] * 10   # mean moved to 1
>>> next(i for i, llr in enumerate(shifted) if cusum.update(llr).drift_detected)
0
"""

from __future__ import annotations

import math

__all__ = ["Cusum", "gaussian_llr", "threshold_for"]


def threshold_for(arl0: float) -> float:
    """CUSUM threshold whose in-control run length is at least ``arl0`` (Lorden's bound).

    >>> round(threshold_for(1e8), 2)
    18.42
    """
    if arl0 <= 1:
        raise ValueError(f"arl0 must be > 1, got {arl0!r}")
    return math.log(arl0)


def gaussian_llr(observed: float, mu0: float, mu1: float, variance: float) -> float:
    """Log-likelihood ratio of one normal observation: mean ``mu1`` against ``mu0``.

    Used on batch means: with a batch of ``n`` and per-event variance ``v``, pass ``v / n``.

    >>> gaussian_llr(1.0, 0.0, 1.0, 1.0), gaussian_llr(0.0, 0.0, 1.0, 1.0)
    (0.5, -0.5)
    """
    if not variance > 0:
        raise ValueError(f"variance must be > 0, got {variance!r}")
    return (mu1 - mu0) / variance * (observed - (mu0 + mu1) / 2.0)


class Cusum:
    """One-sided CUSUM of log-likelihood-ratio increments."""

    __slots__ = ("drift_detected", "statistic", "threshold")

    def __init__(self, threshold: float) -> None:
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold!r}")
        self.threshold = threshold
        self.statistic = 0.0
        self.drift_detected = False

    def update(self, llr: float) -> Cusum:
        """Add one increment; :attr:`drift_detected` tells whether it crossed the threshold."""
        s = self.statistic + llr
        self.statistic = s if s > 0.0 else 0.0
        self.drift_detected = self.statistic > self.threshold
        return self

    @property
    def at_zero(self) -> bool:
        """In control: the evidence for a change is back to none."""
        return self.statistic == 0.0

    def reset(self) -> Cusum:
        """Start accumulating afresh (after a signal)."""
        self.statistic = 0.0
        self.drift_detected = False
        return self
