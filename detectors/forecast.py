"""Forecast error: the scheduler's runtime and cost forecasts, per group, once outcomes arrive.

Method, in sentences a reviewer can follow:

1. **Residual.** A joined outcome counts when its job ran to completion (``succeeded``) or was
   stopped for running past its forecast (``timeout``). Its residual is
   ``log(actual / predicted)``, for runtime and for cost. 0 is a perfect forecast and +0.41 a
   ×1.5 under-forecast; logs make the heavy-tailed ratios symmetric.
2. **Reference.** Each group's first ``warmup`` residuals give its centre (the median) and its
   scale (1.4826 × the median absolute deviation, at least ``min_scale``). Later residuals are
   standardised against them and clipped to ±4, so one wild job cannot signal alone.
3. **Batches and dependence.** Standardised residuals are averaged per batch (between two
   evaluations), pooled until a batch holds ``min_batch`` outcomes. Forecast errors move
   together with load and hardware mix, so they are not independent. The variance of a
   batch mean is ``φ / n``, where ``φ`` is the 95% upper confidence bound of the batch means'
   dispersion over batches confirmed in control (never less than 1), as for equity drift.
4. **Sequential test.** A two-sided CUSUM on the batch means' Gaussian log-likelihood ratio,
   tuned to a shift of ``shift`` scales, signals a bias in either direction. Its threshold
   comes from the shared false-alarm budget.
5. **Recovery.** After a signal, a one-sided CUSUM tests the return from the estimated shift
   to the reference; when it signals, the alert closes.

Running sums of every residual give the bias (mean residual) and the mean absolute error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median
from typing import Final

from detectors.alarm import AlarmCycle
from detectors.cusum import gaussian_llr
from detectors.dispersion import Dispersion

__all__ = ["FORECAST_QUANTITIES", "ForecastDrift", "ForecastSignal", "ResidualWatch"]

FORECAST_QUANTITIES: Final = ("runtime", "cost")
_CLIP: Final = 4.0


@dataclass(frozen=True, slots=True)
class ForecastSignal:
    """``kind`` ``forecast_drift`` (or ``recovered``) for one group and quantity."""

    kind: str
    quantity: str
    ratio: float
    """exp(mean residual since the change): actual / predicted."""
    reference_ratio: float
    support: int
    shift_scales: float


class ResidualWatch:
    """Reference, batch accumulators, CUSUM state and error figures for one quantity."""

    __slots__ = (
        "_warm",
        "abs_sum",
        "batch_n",
        "batch_sum",
        "center",
        "count",
        "cycle",
        "dispersion",
        "run_n",
        "run_sum",
        "scale",
        "shift",
        "sq_sum",
        "sum",
    )

    def __init__(self) -> None:
        self._warm: list[float] | None = []
        self.center = 0.0
        self.scale = 1.0
        self.batch_n = 0
        self.batch_sum = 0.0
        self.cycle = AlarmCycle(sides=2)  # up, down; thresholds are set on every batch
        self.dispersion = Dispersion()
        self.shift = 0.0
        self.run_n = 0
        self.run_sum = 0.0
        self.count = 0
        self.sum = 0.0
        self.abs_sum = 0.0
        self.sq_sum = 0.0

    @property
    def bias(self) -> float | None:
        """Mean log residual over every outcome seen."""
        return self.sum / self.count if self.count else None

    @property
    def mean_abs_error(self) -> float | None:
        """Mean absolute log residual over every outcome seen."""
        return self.abs_sum / self.count if self.count else None

    @property
    def phi(self) -> float:
        """Dispersion of batch means used by the test
        (see :class:`~detectors.dispersion.Dispersion`)."""
        return self.dispersion.value

    @property
    def warming(self) -> bool:
        """Whether its reference (median, MAD) is still being learned: it cannot alarm yet."""
        return self._warm is not None

    def observe(self, residual: float, warmup: int, min_scale: float) -> None:
        """Add one residual (cheap: the test runs per batch, in :meth:`ForecastDrift.step`)."""
        self.count += 1
        self.sum += residual
        self.abs_sum += abs(residual)
        self.sq_sum += residual * residual
        warm = self._warm
        if warm is not None:
            warm.append(residual)
            if len(warm) >= warmup:
                self.center = median(warm)
                mad = median(abs(r - self.center) for r in warm)
                self.scale = max(1.4826 * mad, min_scale)
                self._warm = None
            return
        z = (residual - self.center) / self.scale
        self.batch_sum += _CLIP if z > _CLIP else -_CLIP if z < -_CLIP else z
        self.batch_n += 1


class ForecastDrift:
    """Runs the batch step of every :class:`ResidualWatch` and reports what changed."""

    def __init__(self, warmup: int, shift: float = 1.0, min_scale: float = 0.05,
                 min_batch: int = 10) -> None:
        if warmup < 5:
            raise ValueError(f"warmup must be >= 5, got {warmup}")
        if not shift > 0 or not min_scale > 0:
            raise ValueError("shift and min_scale must be > 0")
        if min_batch < 2:
            raise ValueError(f"min_batch must be >= 2, got {min_batch}")
        self.warmup = warmup
        self.shift = shift
        self.min_scale = min_scale
        self.min_batch = min_batch

    @staticmethod
    def new_watches() -> dict[str, ResidualWatch]:
        """One watch per forecast quantity."""
        return {q: ResidualWatch() for q in FORECAST_QUANTITIES}

    def step(self, quantity: str, watch: ResidualWatch, threshold: float
             ) -> ForecastSignal | None:
        """Close the watch's batch (once it holds ``min_batch`` outcomes) and test it."""
        n = watch.batch_n
        if n < self.min_batch:
            return None
        mean = watch.batch_sum / n
        watch.batch_n = 0
        watch.batch_sum = 0.0
        cycle = watch.cycle
        if not cycle.alarmed and not watch.dispersion.ready:
            watch.dispersion.learn(n * mean, n)  # still learning how the errors move together
            return None
        variance = watch.phi / n
        cycle.threshold = threshold
        if cycle.alarmed:
            # the mirror test: from the estimated shift back to the reference
            if not cycle.recover(gaussian_llr(mean, watch.shift, 0.0, variance)):
                return None
            return ForecastSignal("recovered", quantity,
                                  math.exp(watch.center + mean * watch.scale),
                                  math.exp(watch.center), n, mean)
        k = self.shift
        alarm = cycle.test(gaussian_llr(mean, 0.0, k, variance),
                           gaussian_llr(mean, 0.0, -k, variance))
        in_control = cycle.in_control
        # the dispersion learns from batches confirmed in control (CUSUM back at zero)
        watch.dispersion.observe(n * mean, n, in_control)
        if in_control:
            watch.run_n = 0
            watch.run_sum = 0.0
            return None
        watch.run_n += n
        watch.run_sum += mean * n
        if not alarm:
            return None
        shift = watch.run_sum / watch.run_n
        support = watch.run_n
        watch.dispersion.drop_held()
        watch.shift = shift
        cycle.start_alarm()
        watch.run_n = 0
        watch.run_sum = 0.0
        ratio = math.exp(watch.center + shift * watch.scale)
        return ForecastSignal("forecast_drift", quantity, ratio, math.exp(watch.center),
                              support, shift)
