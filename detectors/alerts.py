"""Alerts and their lifecycle: what fired, about whom, how much, and when it cleared.

An alert has a stable identity, its :data:`AlertKey` (kind, attribute, group, metric), and a
:func:`fingerprint` derived from that identity alone, so both edges of one alert, and the same
alert in another run, carry the same string. :class:`AlertBook` holds the alerts that are open:
an alert fires once when its condition starts to hold and not again until it has resolved, so
a standing problem is one alert, not one per event. Resolving returns the firing edge and when
it fired, from which the resolved line is written (:mod:`detectors.findings`).

>>> book = AlertBook()
>>> key = ("disparity", "team", "a", "preferred_rate")
>>> alert = Alert("PlacewatchPreferredTierDisparity", "firing", fingerprint(key),
...               *key, severity="warning", value=0.7, reference=0.8, decision_id="d-1",
...               event_index=9, at="2026-11-02T08:15:00.000Z", summary="...")
>>> book.fire(key, alert, 0.0), book.fire(key, alert, 60.0), len(book)
(True, False, 1)
>>> fired, since = book.resolve(key)
>>> fired.fingerprint == fingerprint(key), since, book.resolve(key), len(book)
(True, 0.0, None, 0)
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Final

import msgspec

__all__ = ["ALERT_STATES", "Alert", "AlertBook", "AlertKey", "AlertKind", "Where", "fingerprint",
           "iso"]

ALERT_STATES: Final = ("firing", "resolved")
"""The two edges of an alert, as written in ``alerts.jsonl``'s ``state``."""

AlertKey = tuple[str, str | None, str | None, str]
"""(kind, attribute, group, metric): the identity of an alert's condition.

For ``override_expired`` the last part names the override instance (who, why, and its limit),
so two overrides are two alerts; every other kind's last part is the metric alerted on."""


def fingerprint(key: AlertKey) -> str:
    """16 hex digits of SHA-256 over the alert's identity: the same on both edges and in
    every run.

    >>> fingerprint(("equity_drift", "team", "genomics", "preferred_rate"))
    '5f1e3bda3ec52d5e'
    """
    text = "\x1f".join("" if part is None else part for part in key)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def iso(ts: dt.datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, millisecond precision."""
    return ts.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Where:
    """The event an alert fired (or resolved) on."""

    decision_id: str
    event_index: int
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class AlertKind:
    """One documented kind of alert: ``alerts.jsonl``'s ``kind``, its alert name
    (Alertmanager's ``alertname``, the Prometheus rule in alerts/placewatch.rules.yml and its
    runbook in alerts/runbooks/) and its ``severity`` label (critical pages the on-call
    receiver, alerts/alertmanager.yml). Each detector declares the kinds it raises
    (:mod:`detectors.detector`); :mod:`detectors.registry` collects them.

    >>> kind = AlertKind("disparity", "PlacewatchPreferredTierDisparity", "warning")
    >>> at = Where("d-1", 9, dt.datetime(2026, 11, 2, 8, 15, tzinfo=dt.UTC))
    >>> alert = kind.firing(("disparity", "team", "a", "preferred_rate"), at, value=0.7,
    ...                     reference=0.8, summary="...", metric="preferred_rate_parity_ratio")
    >>> alert.alert, alert.state, alert.group, alert.metric
    ('PlacewatchPreferredTierDisparity', 'firing', 'a', 'preferred_rate_parity_ratio')
    >>> alert.at, alert.fingerprint == fingerprint(("disparity", "team", "a", "preferred_rate"))
    ('2026-11-02T08:15:00.000Z', True)
    """

    kind: str
    alert: str
    severity: str

    def __post_init__(self) -> None:
        if not self.kind.isidentifier() or not self.alert.isidentifier():
            raise ValueError(f"kind and alert must be identifiers, got {self.kind!r}, "
                             f"{self.alert!r}")
        if self.severity not in ("critical", "warning"):  # what alertmanager.yml routes
            raise ValueError(f"severity must be critical or warning, got {self.severity!r}")

    def firing(self, key: AlertKey, where: Where, *, value: float, reference: float | str,
               summary: str, details: dict[str, object] | None = None,
               metric: str | None = None) -> Alert:
        """The firing edge of the alert ``key`` (of this kind), detected on ``where``;
        ``metric`` defaults to the key's."""
        if key[0] != self.kind:
            raise ValueError(f"key {key!r} is not of kind {self.kind!r}")
        return Alert(
            alert=self.alert, state="firing", fingerprint=fingerprint(key), kind=self.kind,
            attribute=key[1], group=key[2], metric=key[3] if metric is None else metric,
            severity=self.severity, value=value, reference=reference,
            decision_id=where.decision_id, event_index=where.event_index, at=iso(where.at),
            summary=summary, details={} if details is None else details)


class Alert(msgspec.Struct, frozen=True, omit_defaults=False):
    """One edge of an alert, as written to ``alerts.jsonl`` (field order is the file's).

    A ``firing`` line carries the event the condition was detected on; a ``resolved`` line the
    event on which it cleared, the value then, and in ``details`` when it fired and how long
    it was open.
    """

    alert: str
    state: str
    fingerprint: str
    kind: str
    attribute: str | None
    group: str | None
    metric: str
    severity: str
    value: float
    reference: float | str
    decision_id: str
    event_index: int
    at: str
    summary: str
    details: dict[str, object] = {}


class AlertBook:
    """The alerts open now (their firing edge and the event time they fired at), and how many
    fired and resolved, by kind."""

    __slots__ = ("_open", "fired_by_kind", "resolved_by_kind", "version")

    def __init__(self) -> None:
        self._open: dict[AlertKey, tuple[Alert, float]] = {}
        self.fired_by_kind: dict[str, int] = {}
        self.resolved_by_kind: dict[str, int] = {}
        self.version = 0
        """Bumped whenever an alert opens or resolves (lets callers cache derived views)."""

    def __len__(self) -> int:
        return len(self._open)

    def is_open(self, key: AlertKey) -> bool:
        """Whether the alert is firing now."""
        return key in self._open

    def fire(self, key: AlertKey, alert: Alert, at: float) -> bool:
        """Open ``key`` with its firing edge; False (and nothing kept) if it is open already."""
        if key in self._open:
            return False
        self._open[key] = (alert, at)
        self.fired_by_kind[alert.kind] = self.fired_by_kind.get(alert.kind, 0) + 1
        self.version += 1
        return True

    def resolve(self, key: AlertKey) -> tuple[Alert, float] | None:
        """Close ``key``: its firing edge and the event time it fired at, or None if not open."""
        held = self._open.pop(key, None)
        if held is not None:
            kind = held[0].kind
            self.resolved_by_kind[kind] = self.resolved_by_kind.get(kind, 0) + 1
            self.version += 1
        return held

    def amend(self, key: AlertKey, alert: Alert) -> None:
        """Replace an open alert's firing edge (same identity), keeping when it fired."""
        held = self._open[key]
        if alert.fingerprint != held[0].fingerprint:
            raise ValueError("amend() keeps an alert's identity")
        self._open[key] = (alert, held[1])

    def firing(self, key: AlertKey) -> Alert | None:
        """The firing edge of an open alert."""
        held = self._open.get(key)
        return None if held is None else held[0]

    @property
    def open_keys(self) -> tuple[AlertKey, ...]:
        """Alerts open now, sorted."""
        return tuple(sorted(self._open, key=lambda k: tuple(str(p) for p in k)))

    def open_alerts(self) -> list[tuple[AlertKey, Alert, float]]:
        """Alerts open now with their firing edge and time, sorted by key."""
        return [(key, *self._open[key]) for key in self.open_keys]
