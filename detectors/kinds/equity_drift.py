"""``equity_drift`` and ``amplification``: a group's rate moving against the other groups'
(:mod:`detectors.drift`), and the drifted gap compounding (:mod:`detectors.amplification`).

The statistics live in :mod:`detectors.drift`; this module turns their signals into alerts and
words. An amplification alert ends with the drift it compounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

from detectors.alerts import Alert, AlertKey, AlertKind, Where
from detectors.config import CoreConfig
from detectors.detector import CoreDetector, CoreView, Edge, Fire, Resolve, Statistic
from detectors.drift import DriftSignal, EquityDrift
from detectors.groups import EquityLedger
from detectors.rates import RATE_BY_NAME

__all__ = ["AMPLIFICATION", "EQUITY_DRIFT", "EquityDriftDetector"]

EQUITY_DRIFT: Final = AlertKind("equity_drift", "PlacewatchEquityDrift", "warning")
AMPLIFICATION: Final = AlertKind("amplification", "PlacewatchFeedbackAmplification",
                                 "critical")


class EquityDriftDetector(CoreDetector):
    """One :class:`~detectors.drift.RateWatch` per (attribute, group, rate), run per batch."""

    kinds = (EQUITY_DRIFT, AMPLIFICATION)

    def __init__(self, config: CoreConfig) -> None:
        super().__init__(config)
        self.drift = EquityDrift(config.drift_warmup, config.drift_min_batches,
                                 config.drift_prior, config.trend_window, config.trend_alpha,
                                 config.trend_min_growth, config.drift_detector)

    @property
    def watches(self) -> int:
        return self.drift.watches

    def evaluate(self, core: CoreView, where: Where) -> Iterator[Edge]:
        for signal in self.drift.refresh(core.ledger, core.family_threshold):
            yield from self._edges(signal, core, where)

    def _edges(self, signal: DriftSignal, core: CoreView, where: Where) -> Iterable[Edge]:
        attribute, group, metric = signal.attribute, signal.group, signal.metric
        if signal.kind == "recovered":
            yield Resolve(("equity_drift", attribute, group, metric), signal.observed,
                          drift_resolution(signal))
            loop: AlertKey = ("amplification", attribute, group, metric)
            fired = core.alert_book.firing(loop)
            if fired is not None:  # the loop ends with the drift it compounded
                shortfall = RATE_BY_NAME[metric].shortfall(signal.observed, signal.expected)
                before = fired.details.get("shortfall_at_detection", 0.0)
                growth = shortfall - (before if isinstance(before, float) else 0.0)
                yield Resolve(loop, growth, amplification_resolution(signal, shortfall))
            return
        key: AlertKey = (signal.kind, attribute, group, metric)
        if core.alert_book.is_open(key):
            return
        if signal.kind == "amplification":
            yield Fire(key, amplification_alert(key, signal, where))
        else:
            yield Fire(key, drift_alert(key, signal, self.config.false_alarms_per_million,
                                        where, self.config.drift_detector))

    def still_alarmed(self, key: AlertKey, ledger: EquityLedger) -> bool:
        stats = ledger.groups.get(key[1] or "", {}).get(key[2] or "")
        watch = None if stats is None else (stats.drift or {}).get(key[3])
        return watch is not None and watch.cycle.alarmed

    def statistics(self, ledger: EquityLedger) -> Iterator[Statistic]:
        for attribute in ledger.attribute_names:
            for name, stats in sorted(ledger.groups[attribute].items()):
                for metric, watch in sorted((stats.drift or {}).items()):
                    if watch.ratio is None:
                        continue  # still warming up: no test yet
                    cycle = watch.cycle
                    yield Statistic("equity_drift", attribute, name, metric,
                                    "recovery" if cycle.alarmed else "alarm", cycle.statistic)


def drift_alert(key: AlertKey, s: DriftSignal, budget: float, where: Where,
                detector: str = "cusum") -> Alert:
    """``equity_drift``: a group's rate moved against the other groups'."""
    spec = RATE_BY_NAME[s.metric]
    words, verb, unit = spec.words, spec.verb, spec.support
    return EQUITY_DRIFT.firing(
        key, where, value=round(s.observed, 6), reference=round(s.expected, 6),
        summary=(f"{s.attribute}={s.group}: {words} {verb} to {s.observed:.1%} over its last "
                 f"{s.support} {unit}, against {s.expected:.1%} expected from its earlier "
                 "standing relative to the other groups."),
        details=({"support": s.support, "cusum_threshold": round(s.detail, 4),
                  "false_alarms_per_million_budget": budget} if detector == "cusum" else
                 {"support": s.support, "detector": detector}))


def amplification_alert(key: AlertKey, s: DriftSignal, where: Where) -> Alert:
    """``amplification``: the drifted gap keeps widening window after window."""
    words = RATE_BY_NAME[s.metric].words
    return AMPLIFICATION.firing(
        key, where, metric=f"{s.metric}_gap_growth", value=round(s.detail, 6), reference=0.0,
        summary=(f"{s.attribute}={s.group}: the {words} gap is compounding: the shortfall grew "
                 f"from {s.expected:.1%} when the drift was detected to {s.observed:.1%} since "
                 f"({s.support} of the group's observations): a feedback loop, not a one-off "
                 "shift."),
        details={"shortfall_at_detection": round(s.expected, 6),
                 "shortfall_after": round(s.observed, 6), "observations": s.support})


def drift_resolution(s: DriftSignal) -> str:
    """Why an ``equity_drift`` alert resolved: its mirror test saw the expected rate again."""
    words = RATE_BY_NAME[s.metric].words
    return (f"{s.attribute}={s.group}: {words} back to {s.observed:.1%} against "
            f"{s.expected:.1%} expected from its standing relative to the other groups.")


def amplification_resolution(s: DriftSignal, shortfall: float) -> str:
    """Why an ``amplification`` alert resolved: the drift it compounded has recovered."""
    words = RATE_BY_NAME[s.metric].words
    return (f"{s.attribute}={s.group}: the {words} drift this loop compounded has recovered "
            f"(shortfall {shortfall:.1%} in the latest batch).")
