"""Findings in words, for every kind alike: the resolved edge, the same-population note, the
restart closure.

Each kind's own words (its firing summary and why it resolved) live with its detector in
:mod:`detectors.kinds`: they say who is affected, what was measured, how much, compared with
what, and on which event, so that an on-call engineer can act on the alert line alone.
:func:`resolved_alert` writes the other edge, with the value at resolution and how long the
alert was open. docs/alerts.md describes each alert with its method and runbook.
"""

from __future__ import annotations

import msgspec

from detectors.alerts import Alert, Where, iso

__all__ = ["Where", "duration", "iso", "resolved_alert", "restart_resolution", "same_population"]


def same_population(fired: Alert, attribute: str, group: str, share: float, value: float,
                    reference: float | str) -> Alert:
    """``fired``, naming a group of another attribute made of the same decisions, whose own
    alert it stands for, with that alert's value and reference (:mod:`detectors.coincidence`)."""
    also = list(_same_population(fired))
    also.append({"attribute": attribute, "group": group, "shared": round(share, 4),
                 "value": value, "reference": reference})
    names = ", ".join(f"{a['attribute']}={a['group']}" for a in also)
    base = fired.summary.split(" Same decisions as ")[0]
    return msgspec.structs.replace(
        fired, summary=f"{base} Same decisions as {names}: one population, one alert.",
        details={**fired.details, "same_population": also})


def _same_population(alert: Alert) -> list[dict[str, object]]:
    also = alert.details.get("same_population")
    return list(also) if isinstance(also, list) else []


def resolved_alert(fired: Alert, fired_at: float, value: float, where: Where,
                   why: str) -> Alert:
    """The ``resolved`` edge of ``fired``: same identity and fingerprint, the value now, and
    how long (event time) the alert was open."""
    open_for = max(where.at.timestamp() - fired_at, 0.0)
    details: dict[str, object] = {
        "fired_at": fired.at, "fired_event_index": fired.event_index,
        "fired_decision_id": fired.decision_id, "value_at_firing": fired.value,
        "open_seconds": round(open_for, 3)}
    also = _same_population(fired)
    if also:
        details["same_population"] = also
    return Alert(
        alert=fired.alert, state="resolved", fingerprint=fired.fingerprint, kind=fired.kind,
        attribute=fired.attribute, group=fired.group, metric=fired.metric,
        severity=fired.severity, value=round(value, 6), reference=fired.reference,
        decision_id=where.decision_id, event_index=where.event_index, at=iso(where.at),
        summary=f"Resolved after {duration(open_for)}: {why}",
        details=details,
    )


def duration(seconds: float) -> str:
    """Seconds below a minute, minutes below an hour, else hours to a tenth.

    >>> duration(42.4), duration(600), duration(5400)
    ('42 s', '10 min', '1.5 h')
    """
    if seconds < 59.5:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def restart_resolution(fired: Alert) -> str:
    """Why an alert left open by an earlier run resolved: detector state starts afresh."""
    who = f"{fired.attribute}={fired.group}: " if fired.attribute is not None else ""
    return (f"{who}placewatch restarted and its detectors start afresh, so this alert from the "
            "earlier run is closed here; it fires again as a new alert if the condition "
            "still holds.")
