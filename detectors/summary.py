"""The ``fairness`` section of ``summary.json``: per attribute, per group, and disparity.

For every audited attribute: a ``spread`` block (max/min ratios of the groups' p95 queue
wait and cost per requested vCPU-hour, and the group whose share of preemptions most exceeds
its share of decisions, with that lift), and each group's decision count, the rates of
:data:`~detectors.groups.RATE_METRICS` with their support and Wilson interval, the mean queue
wait, its forecast errors (per quantity: outcomes, mean log residual ``bias_log`` and its
``actual_over_predicted`` ratio, mean absolute log error); then, per rate, the parity
difference and ratio over the groups that reach ``min_group_support`` on that rate's
denominator (never the overflow group).
"""

from __future__ import annotations

import math

from detectors.disparity import StandingDisparity
from detectors.fairness import parity, wilson_interval, z_for_confidence
from detectors.groups import OVERFLOW_GROUP, RATE_METRICS, EquityLedger, GroupStats
from detectors.wait_equity import WaitEquity, WaitGap

__all__ = ["fairness_summary", "wait_gaps"]


def _r(value: float) -> float:
    return round(value, 9)


def _group_entry(stats: GroupStats, z: float) -> dict[str, object]:
    entry: dict[str, object] = {"placements": stats.decisions, "outcomes": stats.outcomes}
    for metric in RATE_METRICS:
        num, den = stats.rate_counts(metric)
        if den:
            low, high = wilson_interval(num, den, z)
            entry[metric] = _r(num / den)
            entry[f"{metric}_ci"] = [_r(low), _r(high)]
        else:
            entry[metric] = None
            entry[f"{metric}_ci"] = None
        entry[f"{metric}_support"] = den
    wait = stats.mean_queue_wait_s
    entry["mean_queue_wait_s"] = None if wait is None else _r(wait)
    p95 = stats.wait_p95_s
    entry["queue_wait_p95_s"] = None if p95 is None else _r(p95)
    price = stats.cost_per_cpu_hour
    entry["cost_per_cpu_hour"] = None if price is None else _r(price)
    forecast: dict[str, object] = {}
    for quantity, watch in (stats.forecast or {}).items():
        bias, mae = watch.bias, watch.mean_abs_error
        forecast[quantity] = {
            "outcomes": watch.count,
            "bias_log": None if bias is None else _r(bias),
            "actual_over_predicted": None if bias is None else _r(math.exp(bias)),
            "mean_abs_log_error": None if mae is None else _r(mae),
        }
    entry["forecast"] = forecast
    return entry


def fairness_summary(ledger: EquityLedger, min_support: int, confidence: float,
                     ratio_threshold: float,
                     alerted: dict[str, list[str]] | None = None) -> dict[str, object]:
    """Deterministic, JSON-ready fairness figures over everything seen so far; ``alerted``
    names, per attribute, the groups with a ``disparity`` alert open now.

    >>> ledger = EquityLedger(("team",), (), 8, 8)
    >>> for team in "aab":
    ...     ledger.resolve({"team": team})[0].decisions += 1
    >>> out = fairness_summary(ledger, 1, 0.95, 0.8)
    >>> out["team"]["groups"]["a"]["placements"]
    2
    >>> out["team"]["disparity"]["queue_rate"]  # doctest: +NORMALIZE_WHITESPACE
    {'parity_difference': 0.0, 'parity_ratio': 1.0, 'groups_compared': 2,
     'min_group': 'a', 'max_group': 'b'}
    """
    z = z_for_confidence(confidence)
    # the disparity alert's own test, on the same counts: which groups are short with confidence
    confident: dict[str, list[str]] = {}
    for finding in StandingDisparity(ratio_threshold, confidence, min_support).evaluate(ledger):
        if finding.significant:
            confident.setdefault(finding.attribute, []).append(finding.group)
    out: dict[str, object] = {}
    for attribute in ledger.attribute_names:
        table = ledger.groups[attribute]
        groups = {name: _group_entry(table[name], z) for name in sorted(table)}
        disparity: dict[str, object] = {}
        for metric in RATE_METRICS:
            rates: dict[str, float] = {}
            for name, stats in table.items():
                num, den = stats.rate_counts(metric)
                if name != OVERFLOW_GROUP and den >= min_support:
                    rates[name] = num / den
            if len(rates) < 2:
                disparity[metric] = None
                continue
            fig = parity(rates)
            figures: dict[str, object] = {
                "parity_difference": _r(fig.difference),
                "parity_ratio": _r(fig.ratio),
                "groups_compared": fig.groups_compared,
                "min_group": fig.min_group,
                "max_group": fig.max_group,
            }
            if metric.startswith("preferred_rate"):
                # a point estimate: may be below the limit by chance on small groups
                figures["four_fifths_point"] = fig.ratio < ratio_threshold
            if metric == "preferred_rate":
                # what the disparity alert tests: below the limit with confidence
                short = sorted(confident.get(attribute, ()))
                figures["four_fifths_confident"] = bool(short)
                figures["four_fifths_confident_groups"] = short
                # the alert, once fired, stays open until the point ratio is back at the limit
                figures["four_fifths_alert_open_groups"] = sorted(
                    (alerted or {}).get(attribute, ()))
            disparity[metric] = figures
        out[attribute] = {
            "groups": groups,
            "disparity": disparity,
            "spread": _spread(table, min_support),
            "overflowed_decisions": ledger.overflowed[attribute],
        }
    return out


def _ratio(values: dict[str, float]) -> dict[str, object] | None:
    if len(values) < 2:
        return None
    low = min(values, key=lambda g: (values[g], g))
    high = max(values, key=lambda g: (values[g], g))
    ratio = values[high] / values[low] if values[low] > 0 else None
    return {"max_over_min": None if ratio is None else _r(ratio), "min_group": low,
            "max_group": high}


def _spread(table: dict[str, GroupStats], min_support: int) -> dict[str, object]:
    """How far apart the groups are on waits, prices and where preemptions land."""
    supported = {n: s for n, s in table.items() if n != OVERFLOW_GROUP}
    waits = {n: s.wait_p95_s for n, s in supported.items() if s.wait_n >= min_support}
    prices = {n: s.cost_per_cpu_hour for n, s in supported.items()
              if s.unit_price_n >= min_support}
    decisions = sum(s.decisions for s in table.values())
    preempted = sum(s.preempted for s in table.values())
    concentration = None
    if preempted and decisions:
        lifts = {n: (s.preempted / preempted) / (s.decisions / decisions)
                 for n, s in supported.items() if s.decisions >= min_support}
        if lifts:
            top = max(lifts, key=lambda g: (lifts[g], g))
            concentration = {"group": top, "share_of_preemptions": _r(
                supported[top].preempted / preempted), "share_of_decisions": _r(
                supported[top].decisions / decisions), "lift": _r(lifts[top])}
    return {
        "queue_wait_p95_s": _ratio({n: w for n, w in waits.items() if w is not None}),
        "cost_per_cpu_hour": _ratio({n: p for n, p in prices.items() if p is not None}),
        "preemption_concentration": concentration,
    }


def wait_gaps(tracker: WaitEquity, gaps: list[WaitGap], evaluate_every: int
              ) -> dict[str, object]:
    """The seed's scheduling-equity figure at the last evaluation: each group's mean wait
    against the rest of its attribute's groups in the same class (priority and job class)
    over the window, the gap, the lower end of its interval, and whether it is a finding
    (:mod:`detectors.wait_equity`; :mod:`detectors.kinds.scheduling_equity` alerts on it).
    """
    rows = [{"attribute": g.attribute, "priority": g.job_class[0], "job_class": g.job_class[1],
             "group": g.group, "mean_wait_s": _r(g.mean_wait_s),
             "rest_mean_wait_s": _r(g.rest_wait_s), "gap": _r(g.gap),
             "gap_lower_bound": _r(g.lower), "limit": g.limit, "placed": g.placed,
             "waited": g.waited, "rest_waited": g.rest_waited, "batches": g.batches,
             "exceeds_limit_with_confidence": g.significant} for g in gaps]
    return {"limit": tracker.default_limit, "limits": dict(sorted(tracker.limits.items())),
            "confidence": tracker.confidence, "window_batches": tracker.window,
            "window_events": tracker.window * evaluate_every,
            "min_waited": tracker.min_support, "comparisons": rows,
            "waits_in_untracked_classes": tracker.untracked}
