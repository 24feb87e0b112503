"""Overdispersion: how much more a stream's batches vary than independent events would (φ).

Real schedulers are bursty (budgets run out, spot capacity is reclaimed in waves), so a group's
events are not independent. The equity and forecast watches divide their evidence by ``φ``,
learned from batches confirmed in control, so that burstiness is not mistaken for a change.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["MIN_DISPERSION_BATCHES", "Dispersion", "phi_upper"]

_PHI_MEMORY: Final = 0.98
_HELD_MAX: Final = 200
MIN_DISPERSION_BATCHES: Final = 5
"""In-control batches a detector learns its dispersion from before it may signal."""
_Z_PHI: Final = 1.6448536269514722  # one-sided 95%


def phi_upper(pearson_sum: float, batches: float) -> float:
    """95% upper confidence bound of a dispersion ``φ`` from a sum of squared Pearson residuals.

    ``pearson_sum / φ`` is about chi-square with ``batches − 1`` degrees of freedom; its 5%
    quantile comes from the Wilson–Hilferty approximation.

    >>> round(phi_upper(9.0, 10), 3)      # a point estimate of 1.0 from 10 batches
    2.715
    """
    df = max(batches - 1.0, 1.0)
    c = 2.0 / (9.0 * df)
    lower_quantile = df * (1.0 - c - _Z_PHI * math.sqrt(c)) ** 3
    return pearson_sum / max(lower_quantile, 1e-9)


class Dispersion:
    """How much more a stream's batches vary than independent events would: ``φ``.

    Each batch brings its deviation from expectation and that deviation's variance under
    independence. Squared standardised deviations are averaged per batch, and also per block
    of ``BLOCK`` consecutive batches, which shows a dependence that outlasts one batch (a
    budget that stays exhausted, a load regime). :attr:`value` is the larger of the two
    95% upper bounds, never less than 1. Batches are held back while the detector's CUSUM is
    above zero and learned once it returns there (:meth:`observe`), or dropped on an alarm
    (:meth:`drop_held`), so a change in progress cannot inflate ``φ``.

    >>> d = Dispersion()
    >>> for dev in [1.0, -1.0] * 20:        # independent-looking: point estimate 1.0
    ...     d.observe(dev, 1.0, in_control=True)
    >>> d.ready, round(d.value, 2)         # the 95% bound from ~27 effective batches
    (True, 1.74)
    """

    __slots__ = ("block", "block_dev", "block_var", "held", "single", "size")

    BLOCK: Final = 4

    def __init__(self) -> None:
        self.single = [0.0, 0.0]  # decayed sum of squared standardised deviations, batches
        self.block = [0.0, 0.0]
        self.block_dev = 0.0
        self.block_var = 0.0
        self.size = 0
        self.held: list[tuple[float, float]] = []

    @property
    def ready(self) -> bool:
        """Whether enough in-control batches were seen for the test to run."""
        return self.single[1] >= MIN_DISPERSION_BATCHES

    @property
    def value(self) -> float:
        """``φ`` for the test: at least 1, the per-batch 95% bound, and the per-block estimate."""
        phi = 1.0
        total, count = self.single
        if count >= 2:
            phi = max(phi, phi_upper(total, count))
        total, count = self.block
        if count >= 3:
            phi = max(phi, total / count)
        return phi

    def observe(self, deviation: float, variance: float, in_control: bool) -> None:
        """One batch; learned (with any held ones) when the CUSUM stands at zero."""
        self.held.append((deviation, variance))
        if not in_control:
            if len(self.held) > _HELD_MAX:
                del self.held[0]
            return
        for dev, var in self.held:
            self._learn(self.single, dev * dev / var)
            self.block_dev += dev
            self.block_var += var
            self.size += 1
            if self.size == self.BLOCK:
                self._learn(self.block, self.block_dev ** 2 / self.block_var)
                self.block_dev = self.block_var = 0.0
                self.size = 0
        self.held.clear()

    def learn(self, deviation: float, variance: float) -> None:
        """A batch known to be in control (warm-up)."""
        self.observe(deviation, variance, in_control=True)

    def drop_held(self) -> None:
        """An alarm fired: the held batches were part of the change."""
        self.held.clear()

    @staticmethod
    def _learn(acc: list[float], value: float) -> None:
        acc[0] = acc[0] * _PHI_MEMORY + value
        acc[1] = acc[1] * _PHI_MEMORY + 1.0
