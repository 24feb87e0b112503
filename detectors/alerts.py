"""Alerts: what fired, about whom, how much, compared with what, and on which event.

An alert is raised once when its condition starts to hold and not again until the condition has
cleared (:class:`AlertBook`), so a standing problem is one alert, not one per event.

>>> book = AlertBook()
>>> key = ("disparity", "team", "a", "preferred_rate")
>>> book.open(key), book.open(key), book.close(key), book.open(key)
(True, False, True, True)
"""

from __future__ import annotations

from typing import Final

import msgspec

__all__ = ["ALERT_KINDS", "Alert", "AlertBook", "AlertKey"]

ALERT_KINDS: Final = (
    "amplification",
    "disparity",
    "equity_drift",
    "forecast_drift",
    "override_expired",
)
"""Documented alert kinds (docs/alerts.md); the contract's ``kind`` field takes one of them."""

AlertKey = tuple[str, str | None, str | None, str]
"""(kind, attribute, group, metric): the identity of an alert's condition."""


class Alert(msgspec.Struct, frozen=True, omit_defaults=False):
    """One fired alert, as written to ``alerts.jsonl`` (field order is the file's)."""

    alert: str
    kind: str
    severity: str
    attribute: str | None
    group: str | None
    metric: str
    value: float
    reference: float | str
    decision_id: str
    event_index: int
    at: str
    summary: str
    details: dict[str, object] = {}


class AlertBook:
    """Open/closed state per alert condition."""

    __slots__ = ("_open", "version")

    def __init__(self) -> None:
        self._open: set[AlertKey] = set()
        self.version = 0
        """Bumped whenever an alert opens or closes (lets callers cache derived views)."""

    def open(self, key: AlertKey) -> bool:
        """Mark ``key`` open; True if it was not open already (the alert should fire)."""
        if key in self._open:
            return False
        self._open.add(key)
        self.version += 1
        return True

    def close(self, key: AlertKey) -> bool:
        """Mark ``key`` resolved; True if it was open."""
        if key in self._open:
            self._open.discard(key)
            self.version += 1
            return True
        return False

    @property
    def open_keys(self) -> tuple[AlertKey, ...]:
        """Conditions alerting now, sorted."""
        return tuple(sorted(self._open, key=lambda k: tuple(str(p) for p in k)))
