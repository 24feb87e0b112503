"""``forecast_drift``: a group's runtime or cost forecasts going wrong in one direction.

The statistic is :mod:`detectors.forecast` (one :class:`~detectors.forecast.ResidualWatch` per
group and quantity, fed the log ratio of actual to predicted); this module feeds it outcomes,
steps it per batch and words its alerts. A group's watches are kept on its
:class:`~detectors.groups.GroupStats` (``forecast``), created on its first forecast error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from detectors.alerts import Alert, AlertKey, AlertKind, Where
from detectors.config import CoreConfig
from detectors.detector import CoreDetector, CoreView, Edge, Fire, Resolve, Statistic
from detectors.events import Outcome, Placement
from detectors.forecast import ForecastDrift, ForecastSignal
from detectors.groups import EquityLedger, GroupStats

__all__ = ["FORECAST_DRIFT", "ForecastDriftDetector"]

FORECAST_DRIFT: Final = AlertKind("forecast_drift", "PlacewatchForecastDrift", "warning")


class ForecastDriftDetector(CoreDetector):
    """Two two-sided watches per group (runtime and cost), each in the family budget."""

    kinds = (FORECAST_DRIFT,)

    def __init__(self, config: CoreConfig) -> None:
        super().__init__(config)
        self.forecast = ForecastDrift(config.forecast_warmup)
        self._watches = 0
        """Sides of the watches whose reference is learned (the ones that can alarm)."""

    @property
    def watches(self) -> int:
        return self._watches

    def on_outcome(self, groups: list[GroupStats], placement: Placement, outcome: Outcome,
                   residuals: list[tuple[str, float]]) -> None:
        if not residuals:
            return
        forecast = self.forecast
        for stats in groups:
            watches = stats.forecast
            if watches is None:
                watches = stats.forecast = forecast.new_watches()
            for quantity, residual in residuals:
                watch = watches[quantity]
                warming = watch.warming
                watch.observe(residual, forecast.warmup, forecast.min_scale)
                if warming and not watch.warming:  # it can alarm from now on: it joins
                    self._watches += 2  # the budget, both sides

    def evaluate(self, core: CoreView, where: Where) -> Iterator[Edge]:
        threshold = core.family_threshold
        for table in core.ledger.groups.values():
            for stats in table.values():
                if stats.forecast is None:
                    continue
                for quantity, watch in stats.forecast.items():
                    found = self.forecast.step(quantity, watch, threshold)
                    if found is None:
                        continue
                    key: AlertKey = ("forecast_drift", stats.attribute, stats.name,
                                     found.quantity)
                    if found.kind == "recovered":
                        yield Resolve(key, found.ratio,
                                      forecast_resolution(stats.attribute, stats.name, found))
                    elif not core.alert_book.is_open(key):
                        yield Fire(key, forecast_alert(key, stats.attribute, stats.name, found,
                                                       where))

    def still_alarmed(self, key: AlertKey, ledger: EquityLedger) -> bool:
        stats = ledger.groups.get(key[1] or "", {}).get(key[2] or "")
        watch = None if stats is None else (stats.forecast or {}).get(key[3])
        return watch is not None and watch.cycle.alarmed

    def statistics(self, ledger: EquityLedger) -> Iterator[Statistic]:
        for attribute in ledger.attribute_names:
            for name, stats in sorted(ledger.groups[attribute].items()):
                for quantity, watch in sorted((stats.forecast or {}).items()):
                    if watch.dispersion.ready or watch.cycle.alarmed:
                        yield Statistic("forecast_drift", attribute, name, quantity,
                                        "recovery" if watch.cycle.alarmed else "alarm",
                                        watch.cycle.statistic)


def forecast_alert(key: AlertKey, attribute: str, group: str, s: ForecastSignal,
                   where: Where) -> Alert:
    """``forecast_drift``: a group's forecasts went wrong in one direction."""
    direction = "under" if s.ratio > s.reference_ratio else "over"
    return FORECAST_DRIFT.firing(
        key, where, metric=f"{s.quantity}_actual_over_predicted", value=round(s.ratio, 6),
        reference=round(s.reference_ratio, 6),
        summary=(f"{attribute}={group}: {s.quantity} is {direction}-forecast: jobs came in at "
                 f"{s.ratio:.2f}× their {s.quantity} forecast over the last {s.support} outcomes, "
                 f"against {s.reference_ratio:.2f}× before."),
        details={"support": s.support, "shift_in_scales": round(s.shift_scales, 4)})


def forecast_resolution(attribute: str, group: str, s: ForecastSignal) -> str:
    """Why a ``forecast_drift`` alert resolved: the residuals are back at their reference."""
    return (f"{attribute}={group}: {s.quantity} forecasts are back in line with their earlier "
            f"accuracy (reference {s.reference_ratio:.2f}× actual over predicted).")
