"""The registries: the detectors the core runs, and the sequential statistics inside them.

:data:`DETECTORS` lists, in the order the core evaluates them, every detector the core builds
(:class:`~detectors.detector.CoreDetector`); the alert kinds, names and severities below are
collected from it, so a kind is declared once, by its detector. Adding a detector is its
module plus one line here. Each entry names the simulator scenario whose change it must find
(``None``: it raises no alert); the contract tests (``tests/detectors``) run every entry
through the whole core: its state survives a pickle round-trip, the same stream gives the same
edges, the fair ``baseline`` stream raises none of its alerts, and the named scenario does.

>>> print(*DETECTORS)
equity_drift forecast_drift disparity scheduling_equity wait_drift override_expired
>>> print(*ALERT_KINDS)
equity_drift amplification forecast_drift disparity scheduling_equity wait_drift override_expired

:data:`REGISTRY` lists the sequential statistics those detectors drive, each with a way to
build it with fixed parameters and to feed it one value of a stream. The contract tests check
each one the same way on streams of floats (batches in place of single values): its state
survives a pickle round-trip, a constant in-control stream never signals, it is deterministic,
and it signals on a stream with a known change. Their estimators (``Dispersion``) have their
own doctests.

>>> sorted(REGISTRY)
['alarm_cycle', 'cusum_gaussian_batch', 'gap_trend', 'river_adwin', 'river_page_hinkley']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from detectors.alarm import AlarmCycle
from detectors.alerts import AlertKind
from detectors.amplification import GapTrend
from detectors.cusum import Cusum, gaussian_llr
from detectors.detector import CoreDetector
from detectors.kinds.disparity import DisparityDetector
from detectors.kinds.equity_drift import EquityDriftDetector
from detectors.kinds.forecast_drift import ForecastDriftDetector
from detectors.kinds.override_expired import OverrideExpiredDetector
from detectors.kinds.scheduling_equity import SchedulingEquityDetector
from detectors.kinds.wait_drift import WaitDriftDetector
from detectors.river_cycle import RiverCycle

__all__ = ["ALERT_KINDS", "ALERT_NAMES", "ALERT_SEVERITIES", "DETECTORS", "REGISTRY",
           "CoreDetectorSpec", "DetectorSpec", "alert_kinds"]


@dataclass(frozen=True, slots=True)
class CoreDetectorSpec:
    """A detector the core runs, and the simulator scenario whose change it must find."""

    make: type[CoreDetector]
    scenario: str | None
    """A :data:`simulator.SCENARIOS` name that raises one of its alerts (None: no alerts)."""


DETECTORS: Final[dict[str, CoreDetectorSpec]] = {
    "equity_drift": CoreDetectorSpec(EquityDriftDetector, "equity_drift"),
    "forecast_drift": CoreDetectorSpec(ForecastDriftDetector, "forecast_bias"),
    "disparity": CoreDetectorSpec(DisparityDetector, "standing_disparity"),
    "scheduling_equity": CoreDetectorSpec(SchedulingEquityDetector, "wait_drift"),
    "wait_drift": CoreDetectorSpec(WaitDriftDetector, "wait_drift"),
    "override_expired": CoreDetectorSpec(OverrideExpiredDetector, "override_leak"),
}


def alert_kinds(detectors: dict[str, CoreDetectorSpec] | None = None) -> tuple[AlertKind, ...]:
    """Every alert kind the registered detectors raise, in registry order (a kind raised by
    two detectors is an error)."""
    kinds: dict[str, AlertKind] = {}
    for name, spec in (DETECTORS if detectors is None else detectors).items():
        for kind in spec.make.kinds:
            if kind.kind in kinds:
                raise ValueError(f"alert kind {kind.kind!r} of detector {name!r} is declared "
                                 "by another detector too")
            kinds[kind.kind] = kind
    return tuple(kinds.values())


ALERT_KINDS: Final = tuple(k.kind for k in alert_kinds())
"""Documented alert kinds (docs/alerts.md); the contract's ``kind`` field takes one of them."""
ALERT_NAMES: Final = {k.kind: k.alert for k in alert_kinds()}
"""Each kind's alert name: ``alerts.jsonl``'s ``alert``, Alertmanager's ``alertname``, the
Prometheus rule (alerts/placewatch.rules.yml) and its runbook (alerts/runbooks/)."""
ALERT_SEVERITIES: Final = {k.kind: k.severity for k in alert_kinds()}
"""Each kind's ``severity`` label: critical pages the on-call receiver (alerts/alertmanager.yml)."""


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
