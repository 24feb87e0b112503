"""Findings in words: every alert placewatch raises, built from what a detector found.

Each builder says who is affected, what was measured, how much, compared with what, and on
which event, so that an on-call engineer can act on the alert line alone. docs/alerts.md
describes each alert with its method and runbook.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from detectors.alerts import Alert
from detectors.disparity import DisparityFinding
from detectors.drift import DriftSignal
from detectors.forecast import ForecastSignal

__all__ = ["Where", "amplification_alert", "disparity_alert", "drift_alert", "forecast_alert",
           "iso", "override_alert"]

_RATE_WORDS = {
    "preferred_rate": ("cheap-tier share", "fell"),
    "queue_rate": ("queueing rate", "rose"),
    "reject_rate": ("rejection rate", "rose"),
    "preemption_rate": ("preemption rate", "rose"),
    "deadline_miss_rate": ("deadline-miss rate", "rose"),
    "preferred_rate_high_priority": ("cheap-tier share of its high-priority jobs", "fell"),
    "old_hardware_rate": ("share of old hardware", "rose"),
}
_SUPPORT_WORDS = {"deadline_miss_rate": "outcomes", "preferred_rate": "placements",
                  "preferred_rate_high_priority": "high-priority placements",
                  "old_hardware_rate": "placements"}


def iso(ts: dt.datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, millisecond precision."""
    return ts.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Where:
    """The event an alert fired on."""

    decision_id: str
    event_index: int
    at: dt.datetime


def disparity_alert(f: DisparityFinding, threshold: float, confidence: float,
                    where: Where) -> Alert:
    """``disparity``: a standing shortfall in cheap compute, with confidence."""
    return Alert(
        alert="PlacewatchPreferredTierDisparity", kind="disparity", severity="warning",
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


def drift_alert(s: DriftSignal, budget: float, where: Where) -> Alert:
    """``equity_drift``: a group's rate moved against the other groups'."""
    words, verb = _RATE_WORDS[s.metric]
    unit = _SUPPORT_WORDS.get(s.metric, "decisions")
    return Alert(
        alert="PlacewatchEquityDrift", kind="equity_drift", severity="warning",
        attribute=s.attribute, group=s.group, metric=s.metric, value=round(s.observed, 6),
        reference=round(s.expected, 6), decision_id=where.decision_id,
        event_index=where.event_index, at=iso(where.at),
        summary=(f"{s.attribute}={s.group}: {words} {verb} to {s.observed:.1%} over its last "
                 f"{s.support} {unit}, against {s.expected:.1%} expected from its earlier "
                 "standing relative to the other groups."),
        details={"support": s.support, "cusum_threshold": round(s.detail, 4),
                 "false_alarms_per_million_budget": budget},
    )


def amplification_alert(s: DriftSignal, where: Where) -> Alert:
    """``amplification``: the drifted gap keeps widening window after window."""
    words, _ = _RATE_WORDS[s.metric]
    return Alert(
        alert="PlacewatchFeedbackAmplification", kind="amplification", severity="critical",
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


def forecast_alert(attribute: str, group: str, s: ForecastSignal, where: Where) -> Alert:
    """``forecast_drift``: a group's forecasts went wrong in one direction."""
    direction = "under" if s.ratio > s.reference_ratio else "over"
    return Alert(
        alert="PlacewatchForecastDrift", kind="forecast_drift", severity="warning",
        attribute=attribute, group=group, metric=f"{s.quantity}_actual_over_predicted",
        value=round(s.ratio, 6), reference=round(s.reference_ratio, 6),
        decision_id=where.decision_id, event_index=where.event_index, at=iso(where.at),
        summary=(f"{attribute}={group}: {s.quantity} is {direction}-forecast: jobs came in at "
                 f"{s.ratio:.2f}× their {s.quantity} forecast over the last {s.support} outcomes, "
                 f"against {s.reference_ratio:.2f}× before."),
        details={"support": s.support, "shift_in_scales": round(s.shift_scales, 4)},
    )


def override_alert(by: str | None, reason: str | None, past: float, limit: str, job_id: str,
                   attributes: dict[str, str], where: Where) -> Alert:
    """``override_expired``: a manual override outlived its expiry."""
    return Alert(
        alert="PlacewatchOverrideExpired", kind="override_expired", severity="warning",
        attribute=None, group=None, metric="override_past_limit_seconds", value=past,
        reference=limit, decision_id=where.decision_id, event_index=where.event_index,
        at=iso(where.at),
        summary=(f"Override by {by or 'unknown'} ({reason or 'no reason'}) still applied "
                 f"{past / 3600:.1f} h past its limit ({limit})."),
        details={"override_by": by, "override_reason": reason, "job_id": job_id,
                 "attributes": dict(sorted(attributes.items()))},
    )
