"""Findings in words: every alert placewatch raises, built from what a detector found.

Each builder says who is affected, what was measured, how much, compared with what, and on
which event, so that an on-call engineer can act on the alert line alone; :func:`resolved_alert`
writes the other edge, with the value at resolution and how long the alert was open.
docs/alerts.md describes each alert with its method and runbook.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import msgspec

from detectors.alerts import ALERT_NAMES, ALERT_SEVERITIES, Alert, AlertKey, fingerprint
from detectors.disparity import DisparityFinding
from detectors.drift import DriftSignal
from detectors.forecast import ForecastSignal
from detectors.rates import RATE_BY_NAME

__all__ = ["Where", "amplification_alert", "amplification_resolution", "disparity_alert",
           "disparity_resolution", "drift_alert", "drift_resolution", "forecast_alert",
           "forecast_resolution", "iso", "override_alert", "override_resolution",
           "resolved_alert", "restart_resolution", "same_population"]

def iso(ts: dt.datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, millisecond precision."""
    return ts.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Where:
    """The event an alert fired on."""

    decision_id: str
    event_index: int
    at: dt.datetime


def disparity_alert(key: AlertKey, f: DisparityFinding, threshold: float, confidence: float,
                    where: Where) -> Alert:
    """``disparity``: a standing shortfall in cheap compute, with confidence."""
    return Alert(
        alert=ALERT_NAMES["disparity"],
        state="firing", fingerprint=fingerprint(key), kind="disparity",
        severity=ALERT_SEVERITIES["disparity"],
        attribute=f.attribute, group=f.group, metric="preferred_rate_parity_ratio",
        value=round(f.ratio, 6), reference=threshold, decision_id=where.decision_id,
        event_index=where.event_index, at=iso(where.at),
        summary=(f"{f.attribute}={f.group} gets cheap compute on {f.rate:.1%} of its placements "
                 f"vs {f.reference_rate:.1%} for {f.reference_group} (ratio {f.ratio:.2f} < "
                 f"{threshold:g}, n={f.support})."),
        details={"rate": round(f.rate, 6), "reference_group": f.reference_group,
                 "reference_rate": round(f.reference_rate, 6), "support": f.support,
                 "confidence": confidence},
    )


def drift_alert(key: AlertKey, s: DriftSignal, budget: float, where: Where,
                detector: str = "cusum") -> Alert:
    """``equity_drift``: a group's rate moved against the other groups'."""
    spec = RATE_BY_NAME[s.metric]
    words, verb, unit = spec.words, spec.verb, spec.support
    return Alert(
        alert=ALERT_NAMES["equity_drift"],
        state="firing", fingerprint=fingerprint(key), kind="equity_drift",
        severity=ALERT_SEVERITIES["equity_drift"],
        attribute=s.attribute, group=s.group, metric=s.metric, value=round(s.observed, 6),
        reference=round(s.expected, 6), decision_id=where.decision_id,
        event_index=where.event_index, at=iso(where.at),
        summary=(f"{s.attribute}={s.group}: {words} {verb} to {s.observed:.1%} over its last "
                 f"{s.support} {unit}, against {s.expected:.1%} expected from its earlier "
                 "standing relative to the other groups."),
        details=({"support": s.support, "cusum_threshold": round(s.detail, 4),
                  "false_alarms_per_million_budget": budget} if detector == "cusum" else
                 {"support": s.support, "detector": detector}),
    )


def amplification_alert(key: AlertKey, s: DriftSignal, where: Where) -> Alert:
    """``amplification``: the drifted gap keeps widening window after window."""
    words = RATE_BY_NAME[s.metric].words
    return Alert(
        alert=ALERT_NAMES["amplification"],
        state="firing", fingerprint=fingerprint(key), kind="amplification",
        severity=ALERT_SEVERITIES["amplification"],
        attribute=s.attribute, group=s.group, metric=f"{s.metric}_gap_growth",
        value=round(s.detail, 6), reference=0.0, decision_id=where.decision_id,
        event_index=where.event_index, at=iso(where.at),
        summary=(f"{s.attribute}={s.group}: the {words} gap is compounding: the shortfall grew "
                 f"from {s.expected:.1%} when the drift was detected to {s.observed:.1%} since "
                 f"({s.support} of the group's observations): a feedback loop, not a one-off "
                 "shift."),
        details={"shortfall_at_detection": round(s.expected, 6),
                 "shortfall_after": round(s.observed, 6), "observations": s.support},
    )


def forecast_alert(key: AlertKey, attribute: str, group: str, s: ForecastSignal,
                   where: Where) -> Alert:
    """``forecast_drift``: a group's forecasts went wrong in one direction."""
    direction = "under" if s.ratio > s.reference_ratio else "over"
    return Alert(
        alert=ALERT_NAMES["forecast_drift"],
        state="firing", fingerprint=fingerprint(key), kind="forecast_drift",
        severity=ALERT_SEVERITIES["forecast_drift"],
        attribute=attribute, group=group, metric=f"{s.quantity}_actual_over_predicted",
        value=round(s.ratio, 6), reference=round(s.reference_ratio, 6),
        decision_id=where.decision_id, event_index=where.event_index, at=iso(where.at),
        summary=(f"{attribute}={group}: {s.quantity} is {direction}-forecast: jobs came in at "
                 f"{s.ratio:.2f}× their {s.quantity} forecast over the last {s.support} outcomes, "
                 f"against {s.reference_ratio:.2f}× before."),
        details={"support": s.support, "shift_in_scales": round(s.shift_scales, 4)},
    )


def override_alert(key: AlertKey, by: str | None, reason: str | None, past: float, limit: str,
                   job_id: str, attributes: dict[str, str], where: Where) -> Alert:
    """``override_expired``: a manual override outlived its expiry."""
    return Alert(
        alert=ALERT_NAMES["override_expired"],
        state="firing", fingerprint=fingerprint(key), kind="override_expired",
        severity=ALERT_SEVERITIES["override_expired"],
        attribute=None, group=None, metric="override_past_limit_seconds", value=past,
        reference=limit, decision_id=where.decision_id, event_index=where.event_index,
        at=iso(where.at),
        summary=(f"Override by {by or 'unknown'} ({reason or 'no reason'}) still applied "
                 f"{past / 3600:.1f} h past its limit ({limit})."),
        details={"override_by": by, "override_reason": reason, "job_id": job_id,
                 "attributes": dict(sorted(attributes.items()))},
    )


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
        summary=f"Resolved after {_duration(open_for)}: {why}",
        details=details,
    )


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


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


def forecast_resolution(attribute: str, group: str, s: ForecastSignal) -> str:
    """Why a ``forecast_drift`` alert resolved: the residuals are back at their reference."""
    return (f"{attribute}={group}: {s.quantity} forecasts are back in line with their earlier "
            f"accuracy (reference {s.reference_ratio:.2f}× actual over predicted).")


def disparity_resolution(attribute: str, group: str, ratio: float, limit: float) -> str:
    """Why a ``disparity`` alert resolved: the ratio is at or above the limit again."""
    return (f"{attribute}={group} gets cheap compute at {ratio:.2f} of the best-served group's "
            f"rate (at or above {limit:g}).")


def override_resolution(by: str | None, reason: str | None, last_seen: dt.datetime,
                        quiet_s: float) -> str:
    """Why an ``override_expired`` alert resolved: the override stopped being applied."""
    return (f"Override by {by or 'unknown'} ({reason or 'no reason'}) not applied since "
            f"{iso(last_seen)} ({_duration(quiet_s)} of events without it): taken as lifted.")


def restart_resolution(fired: Alert) -> str:
    """Why an alert left open by an earlier run resolved: detector state starts afresh."""
    who = f"{fired.attribute}={fired.group}: " if fired.attribute is not None else ""
    return (f"{who}placewatch restarted and its detectors start afresh, so this alert from the "
            "earlier run is closed here; it fires again as a new alert if the condition "
            "still holds.")
