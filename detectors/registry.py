"""The registry of sequential detectors, with what the shared contract tests need of each.

Every detector the core runs is listed here with a way to build it with fixed parameters and
to feed it one value of a stream. The contract tests (``tests/detectors``) check each one:
its state survives a pickle round-trip, a constant in-control stream never signals, it is
deterministic, and it signals on a stream with a known change. Add a detector here when you
add one to the core.

>>> sorted(REGISTRY)
['alarm_cycle', 'cusum_gaussian_batch', 'gap_trend', 'river_adwin', 'river_page_hinkley']

The core's equity and forecast watches run these tests (batches in place of single values);
their estimators (``Dispersion``) have their own doctests, and the whole core is tested on
golden streams with known change points.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from detectors.alarm import AlarmCycle
from detectors.amplification import GapTrend
from detectors.cusum import Cusum, gaussian_llr
from detectors.river_cycle import RiverCycle

__all__ = ["REGISTRY", "DetectorSpec"]


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    """How to build a detector and feed it a stream of floats; ``feed`` returns a signal."""

    make: Callable[[], Any]
    feed: Callable[[Any, float], bool]
    in_control: float
    """A value whose constant stream must never signal."""
    changed: float
    """A value whose constant stream, after ``in_control`` ones, must signal."""


def _gaussian(d: Cusum, x: float) -> bool:
    """Batch means of 25 standardised residuals watched for a one-scale rise."""
    return bool(d.update(gaussian_llr(x, 0.0, 1.0, 1.0 / 25)).drift_detected)


def _cycle(d: AlarmCycle, x: float) -> bool:
    """Batch log-likelihood ratios: an alarm, then the mirror test back (``-x``)."""
    return d.recover(-x) if d.alarmed else d.test(x)


def _alarm_cycle() -> AlarmCycle:
    cycle = AlarmCycle(sides=1)
    cycle.threshold = 8.0
    return cycle


def _river(d: RiverCycle, z: float) -> bool:
    """Standardised batch deviations: an alarm, then the way back."""
    if d.alarmed:
        return d.recover(z)
    if d.test(z):
        d.start_alarm()
        return True
    return False


def _gap(d: GapTrend, x: float) -> bool:
    d.update_batch(x, 50, 0.25)
    return bool(d.done and d.amplifying)


def _gap_trend() -> GapTrend:
    trend = GapTrend(window=300, alpha=0.01, min_growth=0.05)
    trend.start([(0.2, 200, 0.25)])   # detected at a 20-point shortfall
    return trend


REGISTRY: Final[dict[str, DetectorSpec]] = {
    # the alarm / recovery cycle that the equity and forecast watches share
    "alarm_cycle": DetectorSpec(_alarm_cycle, _cycle, in_control=-0.5, changed=1.0),
    # River's detectors, configurable in place of the CUSUM (drift_detector)
    "river_adwin": DetectorSpec(lambda: RiverCycle("adwin"), _river, in_control=0.0,
                                changed=4.0),
    "river_page_hinkley": DetectorSpec(lambda: RiverCycle("page_hinkley"), _river,
                                       in_control=0.0, changed=4.0),
    # the CUSUM as the equity and forecast watches drive it
    "cusum_gaussian_batch": DetectorSpec(lambda: Cusum(threshold=8.0), _gaussian,
                                         in_control=0.0, changed=1.0),
    # a shortfall that stays at its detected level is a step: never amplification
    "gap_trend": DetectorSpec(_gap_trend, _gap, in_control=0.2, changed=float("nan")),
}
