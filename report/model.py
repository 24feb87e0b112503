"""Every figure of the Monday report, computed from a run directory's data (no I/O).

The methods, one sentence each (docs/report.md says more):

- **Rates** are sums of the history windows whose start lies in the week (local time): a
  group's cheap-tier share is its placements on a preferred tier over its placements stating a
  tier, and so on for each rate of :mod:`detectors.rates`; a group is compared only with at
  least ``min_group_support`` in its denominator.
- **Intervals**: a rate's is Wilson's; a parity ratio's (a group's cheap-tier share over the
  best-served group's) is Katz's log interval (Haldane-corrected when a count is 0).
  The scorecard's intervals are simultaneous over the attribute's comparisons with the
  best-served group (Bonferroni: each at ``1 - (1 - confidence) / (groups - 1)``), so "below
  the four-fifths line with confidence", for any group, controls the chance of any false flag
  on the attribute.
- **Money** (an estimate, said so beside every figure): for a cheap-tier shortfall, the
  placements the group would have had on cheap tiers at the other groups' share over the same
  windows, times what one of its premium placements cost more than one of its cheap ones
  (its own means where it has at least ``min_group_support`` of each, else the attribute's);
  for a forecast drift, the group's actual minus predicted cost; for a preemption rise, the
  excess preemptions times the group's mean spend per tiered placement (work to re-run); other kinds
  have no price in the events, and their excess count is given instead.
- **Trends** ("who would silently lose first"): a weighted least-squares line through each
  group's quarter-day cheap-tier shortfall against the rest of its attribute over two weeks,
  weights the inverse binomial variances, the slope's error widened by the fit's own
  overdispersion; a rising shortfall counts when significant at the Bonferroni-corrected
  level over the groups tested; the projection is the days until the group's share would
  cross four fifths of the rest's at that slope, for groups with no open alert.
- **Audit coverage** and **group-flip rates** are proportions with Wilson intervals.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from scipy.stats import t as student_t

from detectors.alerts import Alert
from detectors.fairness import wilson_interval, z_for_confidence
from detectors.groups import OVERFLOW_GROUP, WAIT_BUCKETS
from detectors.history import GroupWindow, HistoryRecord, StreamWindow
from detectors.rates import RATE_BY_NAME, RATES
from report.stats import katz_ratio, weighted_trend
from report.week import Week, zone
from streams.findings import Finding

__all__ = ["ReportInputs", "build"]

FOUR_FIFTHS: Final = 0.8
SHOWN_GROUPS: Final = 12
"""Groups a table shows per attribute (the worst first); report.json has them all."""
EXAMPLES: Final = 5
_PRICED_SHORTFALL: Final = {"preferred_rate": ("tiered", "preferred"),
                            "preferred_rate_high_priority": ("hp_tiered", "hp_preferred")}


@dataclass(frozen=True, slots=True)
class ReportInputs:
    """Everything :func:`build` reads."""

    week: Week
    history: Sequence[HistoryRecord]
    history_bad_lines: int
    history_first_day: dt.date | None
    alerts: Sequence[Alert]
    alerts_bad_lines: int
    findings: Sequence[Finding]
    findings_error: str
    audits: Sequence[dict[str, Any]]
    audits_emptied: int
    chain_ok: bool | None
    chain_records: int
    chain_head: str
    chain_problem: str
    currency: str
    min_support: int
    confidence: float
    audit_sample_rate: float
    config_hash: str
    summary: dict[str, Any]
    data_dir: str
    config_file: str


def _ts(text: str) -> float:
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _iso(ts: float, tz: str) -> str:
    return dt.datetime.fromtimestamp(ts, zone(tz)).strftime("%Y-%m-%d %H:%M %Z")


class _Totals:
    """Sums of group windows."""

    __slots__ = ("counts", "sums", "waits")

    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)
        self.sums: dict[str, float] = defaultdict(float)
        self.waits = [0] * WAIT_BUCKETS

    def add(self, window: GroupWindow) -> None:
        for key, count in window.counts.items():
            self.counts[key] += count
        for key, total in window.sums.items():
            self.sums[key] += total
        for bucket, count in window.waits.items():
            self.waits[int(bucket)] += count

    def merge(self, other: _Totals) -> None:
        for key, count in other.counts.items():
            self.counts[key] += count
        for key, total in other.sums.items():
            self.sums[key] += total
        for i, count in enumerate(other.waits):
            self.waits[i] += count

    def minus(self, other: _Totals) -> _Totals:
        """These sums less ``other``'s (a part of them)."""
        out = _Totals()
        out.merge(self)
        for key, count in other.counts.items():
            out.counts[key] -= count
        for key, total in other.sums.items():
            out.sums[key] -= total
        for i, count in enumerate(other.waits):
            out.waits[i] -= count
        return out

    def rate(self, metric: str) -> tuple[int, int]:
        spec = RATE_BY_NAME[metric]
        return self.counts.get(spec.numerator, 0), self.counts.get(spec.denominator, 0)


def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None or math.isnan(value) else f"{100 * value:.{digits}f}%"


def _money(value: float, currency: str) -> str:
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value >= 1000:
        return f"{sign}{value:,.0f} {currency}"
    return f"{sign}{value:,.2f} {currency}"


TREND_BIN_S: Final = 6 * 3600
"""The trend fit's points: the shortfall over each quarter day of the two weeks."""
MIN_TREND_BINS: Final = 20
"""Quarter days with data a group's trend needs (of the 56), five days' worth."""
MIN_WEEK_BINS: Final = 8
"""Of them, quarter days in the report's own week (two days' worth)."""


class _Windows:
    """The week's group windows, indexed for the sections."""

    def __init__(self, records: Iterable[HistoryRecord], week: Week) -> None:
        self.week = week
        previous = week.previous()
        self.start, self.end = week.start.timestamp(), week.end.timestamp()
        self.prev_start = previous.start.timestamp()
        tz = zone(week.tz)
        self.this: dict[str, dict[str, _Totals]] = defaultdict(lambda: defaultdict(_Totals))
        self.last: dict[str, dict[str, _Totals]] = defaultdict(lambda: defaultdict(_Totals))
        self.daily: dict[tuple[str, str], dict[dt.date, _Totals]] = defaultdict(
            lambda: defaultdict(_Totals))
        self.binned: dict[tuple[str, str], dict[int, _Totals]] = defaultdict(
            lambda: defaultdict(_Totals))
        """Per group, its windows in bins of TREND_BIN_S from last week's start (trends)."""
        self.by_window: dict[tuple[str, str], list[tuple[float, float, GroupWindow]]] = \
            defaultdict(list)
        self.per_window: dict[str, dict[tuple[float, float], _Totals]] = defaultdict(
            lambda: defaultdict(_Totals))
        """Per attribute, per window of the week: every group's windows summed."""
        self.stream: dict[str, int] = defaultdict(int)
        self.stream_last: dict[str, int] = defaultdict(int)
        self.rejected: dict[str, int] = defaultdict(int)
        self.overrides: dict[tuple[str, str], list[Any]] = {}
        self.overrides_other = 0
        self.starts_this: set[float] = set()
        """Distinct window starts of the week with stream data (parts of one add up)."""
        self.window_s = 0.0
        for record in records:
            start = _ts(record.start)
            if not self.prev_start <= start < self.end:
                continue
            this_week = start >= self.start
            if isinstance(record, StreamWindow):
                target = self.stream if this_week else self.stream_last
                for key, value in record.counts.items():
                    target[key] += value
                if this_week:
                    self.starts_this.add(start)
                    self.window_s = self.window_s or (_ts(record.end) - start)
                    for key, value in record.rejected_by_reason.items():
                        self.rejected[key] += value
                    for seen in record.overrides:
                        held = self.overrides.setdefault((seen.by, seen.reason), [0, None])
                        held[0] += seen.placements
                        if seen.latest_expiry and (held[1] is None or seen.latest_expiry > held[1]):
                            held[1] = seen.latest_expiry
                    self.overrides_other += record.overrides_other
                continue
            where = (record.attribute, record.group)
            (self.this if this_week else self.last)[record.attribute][record.group].add(record)
            day = dt.datetime.fromtimestamp(start, tz).date()
            self.daily[where][day].add(record)
            self.binned[where][int((start - self.prev_start) // TREND_BIN_S)].add(record)
            if this_week:
                end = _ts(record.end)
                self.by_window[where].append((start, end, record))
                self.per_window[record.attribute][(start, end)].add(record)

    @property
    def attributes(self) -> list[str]:
        return sorted(set(self.this) | set(self.last))

    def period(self, attribute: str, group: str | None, since: float, until: float
               ) -> tuple[_Totals, _Totals]:
        """The group's totals and the rest of its attribute's over the week's windows that
        overlap ``[since, until)`` (a window is counted whole)."""
        mine, everyone = _Totals(), _Totals()
        if group is not None:
            for start, end, window in self.by_window.get((attribute, group), ()):
                if start < until and end > since:
                    mine.add(window)
        for (start, end), totals in self.per_window.get(attribute, {}).items():
            if start < until and end > since:
                everyone.merge(totals)
        return mine, everyone.minus(mine)


# -- sections ------------------------------------------------------------------------------


def _rate_rows(this: dict[str, _Totals], last: dict[str, _Totals], metric: str,
               support: int, z: float) -> list[dict[str, Any]]:
    rows = []
    for group in sorted(set(this) | set(last)):
        k, n = this[group].rate(metric) if group in this else (0, 0)
        k0, n0 = last[group].rate(metric) if group in last else (0, 0)
        lo, hi = wilson_interval(k, n, z)
        rate = k / n if n else None
        before = k0 / n0 if n0 >= support else None
        rows.append({"group": group, "numerator": k, "denominator": n, "rate": rate,
                     "low": lo, "high": hi, "supported": n >= support,
                     "previous": before, "previous_denominator": n0,
                     "change": (rate - before) if rate is not None and before is not None
                     and n >= support else None})
    return rows


def _disparity(windows: _Windows, inputs: ReportInputs) -> list[dict[str, Any]]:
    """Per attribute: each group's cheap-tier share this week and last, its parity ratio
    against the best-served group with a simultaneous interval, and the attribute's light."""
    out = []
    support = inputs.min_support
    z = z_for_confidence(inputs.confidence)
    for attribute in windows.attributes:
        this, last = windows.this.get(attribute, {}), windows.last.get(attribute, {})
        rows = _rate_rows(this, last, "preferred_rate", support, z)
        compared = [r for r in rows if r["supported"] and r["group"] != OVERFLOW_GROUP]
        entry: dict[str, Any] = {"attribute": attribute, "groups": len(rows),
                                 "compared": len(compared), "rows": rows}
        if len(compared) >= 2 and max(r["rate"] for r in compared) == 0:
            entry["none_preferred"] = True  # nobody got cheap tiers: no ratio to speak of
            compared = []
        if len(compared) >= 2:
            best = max(compared, key=lambda r: (r["rate"], r["group"]))
            z_sim = z_for_confidence(1 - (1 - inputs.confidence) / (len(compared) - 1))
            for row in compared:
                if row is best:
                    row["ratio"], row["ratio_low"], row["ratio_high"] = 1.0, 1.0, 1.0
                    continue
                ratio, lo, hi = katz_ratio(row["numerator"], row["denominator"], best["numerator"],
                                      best["denominator"], z_sim)
                row["ratio"], row["ratio_low"], row["ratio_high"] = ratio, lo, hi
            worst = min(compared, key=lambda r: (r["ratio"], r["group"]))
            # any group whose whole interval is below the line, the clearest first
            sure = sorted((r for r in compared if r["ratio_high"] < FOUR_FIFTHS),
                          key=lambda r: (r["ratio_high"], r["group"]))
            entry.update(best=best["group"], worst=worst["group"], ratio=worst["ratio"],
                         ratio_low=worst["ratio_low"], ratio_high=worst["ratio_high"],
                         confidently_below=bool(sure),
                         confident_groups=[r["group"] for r in sure],
                         below=worst["ratio"] < FOUR_FIFTHS)
            # the group the light is about: the clearest confidently below, else the lowest
            flag = sure[0] if sure else worst
            entry.update(flag_group=flag["group"], flag_ratio=flag["ratio"],
                         flag_low=flag["ratio_low"], flag_high=flag["ratio_high"])
            last_counts = {g: t.rate("preferred_rate") for g, t in last.items()
                           if g != OVERFLOW_GROUP}
            last_rates = {g: k / n for g, (k, n) in last_counts.items() if n >= support}
            if len(last_rates) >= 2 and max(last_rates.values()) > 0:
                entry["previous_ratio"] = min(last_rates.values()) / max(last_rates.values())
            compared.sort(key=lambda r: (r["ratio"], r["group"]))
            entry["shown"] = compared[:SHOWN_GROUPS]
            entry["hidden"] = len(compared) - len(entry["shown"])
        else:
            entry["shown"] = []
            entry["hidden"] = 0
        out.append(entry)
    return out


def _other_rates(windows: _Windows, inputs: ReportInputs) -> list[dict[str, Any]]:
    """Every tracked rate per attribute: the group furthest from the rest, this week."""
    out = []
    z = z_for_confidence(inputs.confidence)
    for attribute in windows.attributes:
        this, last = windows.this.get(attribute, {}), windows.last.get(attribute, {})
        for spec in RATES:
            rows = [r for r in _rate_rows(this, last, spec.name, inputs.min_support, z)
                    if r["supported"] and r["group"] != OVERFLOW_GROUP]
            if len(rows) < 2:
                continue
            total_k = sum(r["numerator"] for r in rows)
            total_n = sum(r["denominator"] for r in rows)
            if total_k == 0:
                continue  # nothing of the kind happened to anyone
            for row in rows:
                rest_n = total_n - row["denominator"]
                row["rest"] = ((total_k - row["numerator"]) / rest_n) if rest_n else None
                row["gap"] = (spec.shortfall(row["rate"], row["rest"])
                              if row["rest"] is not None else 0.0)
            worst = max(rows, key=lambda r: (r["gap"], r["group"]))
            out.append({"attribute": attribute, "metric": spec.name, "words": spec.words,
                        "adverse": spec.adverse, "group": worst["group"], "rate": worst["rate"],
                        "low": worst["low"], "high": worst["high"], "rest": worst["rest"],
                        "gap": worst["gap"], "previous": worst["previous"],
                        "clear_gap": worst["gap"] > 0 and (
                            worst["low"] > worst["rest"] + 1e-9 if spec.adverse == "rise"
                            else worst["high"] < worst["rest"] - 1e-9)})
    return out


def _spend_means(mine: _Totals, rest: _Totals, support: int) -> tuple[float, float, str] | None:
    """Mean spend of one premium and one cheap placement: the group's own, else everyone's."""
    def means(t: _Totals) -> tuple[float, float] | None:
        pn, cn = t.counts.get("premium_spend_n", 0), t.counts.get("cheap_spend_n", 0)
        if pn < support or cn < support:
            return None
        return t.sums.get("premium_spend_sum", 0.0) / pn, t.sums.get("cheap_spend_sum", 0.0) / cn
    own = means(mine)
    if own is not None:
        return own[0], own[1], "its own"
    both = _Totals()
    both.merge(mine)
    both.merge(rest)
    pooled = means(both)
    if pooled is not None:
        return pooled[0], pooled[1], "the attribute's"
    return None


def _estimate(alert: Alert, windows: _Windows, since: float, until: float,
              inputs: ReportInputs) -> dict[str, Any]:
    """The money figure of one anomaly over its part of the week, and how it was made."""
    currency = inputs.currency
    attribute, group, metric = alert.attribute, alert.group, alert.metric
    if attribute is None or group is None:
        return {"amount": None, "method": "No money figure: a manual override's cost is not "
                                          "in the events."}
    mine, rest = windows.period(attribute, group, since, until)
    kind = alert.kind
    if kind == "forecast_drift":
        actual = mine.sums.get("cost_actual_sum", 0.0)
        predicted = mine.sums.get("cost_predicted_sum", 0.0)
        n = mine.counts.get("cost_res_n", 0)
        return {"amount": actual - predicted,
                "method": f"Actual minus predicted cost of the group's {n} finished jobs with "
                          f"both figures in the period: {_money(actual, currency)} against "
                          f"{_money(predicted, currency)} forecast."}
    if metric in _PRICED_SHORTFALL:
        den, num = _PRICED_SHORTFALL[metric]
        n, k = mine.counts.get(den, 0), mine.counts.get(num, 0)
        rest_n, rest_k = rest.counts.get(den, 0), rest.counts.get(num, 0)
        if n == 0 or rest_n == 0:
            return {"amount": None, "method": "No money figure: no tiered placements of the "
                                              "group (or of the rest) in the period."}
        share, rest_share = k / n, rest_k / rest_n
        withheld = max(0.0, (rest_share - share) * n)
        means = _spend_means(mine, rest, inputs.min_support)
        if means is None:
            return {"amount": None, "excess": withheld,
                    "method": f"About {withheld:.0f} of its {n} tiered placements would have "
                              "been on cheap tiers at the other groups' share; too few priced "
                              "placements to value them."}
        premium, cheap, whose = means
        amount = withheld * max(0.0, premium - cheap)
        return {"amount": amount, "excess": withheld,
                "method": f"At the other groups' cheap-tier share ({_pct(rest_share)}) rather "
                          f"than its {_pct(share)}, {withheld:.0f} more of its {n} tiered "
                          f"placements would have run on cheap tiers; one premium placement "
                          f"cost {_money(premium, currency)} against {_money(cheap, currency)} "
                          f"for a cheap one ({whose} means in the period)."}
    spec = RATE_BY_NAME.get(metric)
    if spec is None:
        return {"amount": None, "method": "No money figure for this kind."}
    k, n = mine.rate(metric)
    rk, rn = rest.rate(metric)
    excess = max(0.0, k - (rk / rn) * n) if rn else 0.0
    priced = mine.counts.get("cheap_spend_n", 0) + mine.counts.get("premium_spend_n", 0)
    if metric == "preemption_rate" and priced:
        per = (mine.sums.get("cheap_spend_sum", 0.0)
               + mine.sums.get("premium_spend_sum", 0.0)) / priced
        return {"amount": excess * per, "excess": excess,
                "method": f"{excess:.0f} preemptions beyond the rest's rate over {n} "
                          f"decisions, times the group's mean spend per placement "
                          f"({_money(per, currency)}): work that has to run again."}
    return {"amount": None, "excess": excess,
            "method": f"No price in the events for this: {excess:.0f} {spec.support} beyond "
                      f"the rest's {spec.words} over the group's {n}."}


def _same_population(alert: Alert) -> list[list[str]]:
    """Groups an alert reports inside it because they are the same decisions."""
    merged = alert.details.get("same_population")
    if not isinstance(merged, list):
        return []
    return [[str(other.get("attribute")), str(other.get("group"))] for other in merged
            if isinstance(other, dict)]


def _anomalies(windows: _Windows, inputs: ReportInputs) -> list[dict[str, Any]]:
    """Every alert open at some time in the week, with its part of the week's money."""
    start, end = windows.start, windows.end
    tz = inputs.week.tz
    episodes: list[list[Alert | None]] = []  # [firing edge, its resolved edge or None]
    still_open: dict[str, int] = {}  # fingerprint -> its episode now open
    for alert in inputs.alerts:
        if alert.state == "firing":
            still_open[alert.fingerprint] = len(episodes)
            episodes.append([alert, None])
        elif alert.fingerprint in still_open:
            episodes[still_open.pop(alert.fingerprint)][1] = alert
    out = []
    for fired_edge, edge in episodes:
        assert fired_edge is not None
        alert = fired_edge
        at = _ts(alert.at)
        until = _ts(edge.at) if edge is not None else math.inf
        if at >= end or until < start:
            continue
        since, stop = max(at, start), min(until, end)
        estimate = _estimate(alert, windows, since, stop, inputs)
        out.append({
            "alert": alert.alert, "kind": alert.kind, "attribute": alert.attribute,
            "group": alert.group, "metric": alert.metric, "severity": alert.severity,
            "summary": alert.summary, "fired_at": _iso(at, tz), "fired_at_utc": alert.at,
            "decision_id": alert.decision_id,
            "resolved_at": _iso(until, tz) if edge is not None else None,
            "resolution": edge.summary if edge is not None else None,
            "open_at_week_end": edge is None or until >= end,
            "value": alert.value, "reference": alert.reference,
            "same_population": _same_population(alert),
            "amount": estimate["amount"], "excess": estimate.get("excess"),
            "method": estimate["method"],
            "amount_text": (_money(estimate["amount"], inputs.currency)
                            if estimate["amount"] is not None else "not priced"),
        })
    return out


def _forecast(windows: _Windows, inputs: ReportInputs) -> list[dict[str, Any]]:
    z = z_for_confidence(inputs.confidence)
    out = []
    for attribute in windows.attributes:
        rows: list[dict[str, Any]] = []
        for group, totals in sorted(windows.this.get(attribute, {}).items()):
            n = totals.counts.get("runtime_res_n", 0)
            if n < max(inputs.min_support, 2):
                continue
            mean = totals.sums.get("runtime_res_sum", 0.0) / n
            var = max(0.0, (totals.sums.get("runtime_res_sq", 0.0) - n * mean * mean) / (n - 1))
            half = z * math.sqrt(var / n)
            gap = totals.sums.get("cost_actual_sum", 0.0) - totals.sums.get(
                "cost_predicted_sum", 0.0)
            rows.append({"group": group, "n": n, "ratio": math.exp(mean),
                         "low": math.exp(mean - half), "high": math.exp(mean + half),
                         "cost_gap": gap, "cost_gap_text": _money(gap, inputs.currency)})
        if rows:
            rows.sort(key=lambda r: (-abs(math.log(r["ratio"])), r["group"]))
            out.append({"attribute": attribute, "rows": rows[:SHOWN_GROUPS],
                        "hidden": max(0, len(rows) - SHOWN_GROUPS)})
    return out


def _trends(windows: _Windows, inputs: ReportInputs, open_groups: set[tuple[str, str]]
            ) -> dict[str, Any]:
    """Daily cheap-tier shortfall against the rest, its slope, and the first to cross 4/5."""
    days = inputs.week.previous().days() + inputs.week.days()
    bins = int((windows.end - windows.prev_start) // TREND_BIN_S) + 1
    candidates: list[dict[str, Any]] = []
    series: dict[str, dict[str, list[float | None]]] = {}
    for attribute in windows.attributes:
        groups = sorted({g for (a, g) in windows.daily if a == attribute} - {OVERFLOW_GROUP})
        if len(groups) < 2:
            continue
        per_bin: list[list[int]] = [[0, 0] for _ in range(bins)]
        for group in groups:
            for index, t in windows.binned[(attribute, group)].items():
                gk, gn = t.rate("preferred_rate")
                per_bin[index][0] += gk
                per_bin[index][1] += gn
        series[attribute] = {}
        for group in groups:
            xs, ys, ws = [], [], []
            line: list[float | None] = []
            for day in days:
                on_day = windows.daily[(attribute, group)].get(day)
                gk, gn = on_day.rate("preferred_rate") if on_day is not None else (0, 0)
                line.append(gk / gn if gn else None)
            for index, t in sorted(windows.binned[(attribute, group)].items()):
                gk, gn = t.rate("preferred_rate")
                ak, an = per_bin[index]
                rn = an - gn
                if gn < 10 or rn < 10:
                    continue
                p, rest = gk / gn, (ak - gk) / rn
                var = max(p * (1 - p), 0.25 / gn) / gn + max(rest * (1 - rest), 0.25 / rn) / rn
                xs.append(index * TREND_BIN_S / 86400)  # in days
                ys.append(rest - p)
                ws.append(1.0 / var)
            series[attribute][group] = line
            this_week_points = sum(1 for x in xs if x >= 7.0)
            if len(xs) < MIN_TREND_BINS or this_week_points < MIN_WEEK_BINS:
                continue
            fit = weighted_trend(xs, ys, ws, 14.0)
            if fit is None:
                continue
            slope, se, at_end = fit  # at_end: the fitted shortfall at the week's end
            this = windows.this.get(attribute, {}).get(group)
            share = rest_share = None
            if this is not None and this.rate("preferred_rate")[1] >= inputs.min_support:
                gk, gn = this.rate("preferred_rate")
                named = [t for g, t in windows.this[attribute].items() if g != OVERFLOW_GROUP]
                ak = sum(t.rate("preferred_rate")[0] for t in named)
                an = sum(t.rate("preferred_rate")[1] for t in named)
                if gn and an - gn:
                    share, rest_share = gk / gn, (ak - gk) / (an - gn)
            candidates.append({"attribute": attribute, "group": group, "slope": slope,
                               "se": se, "t": slope / se, "df": len(xs) - 2, "points": len(xs),
                               "share": share, "shortfall_at_end": at_end,
                               "rest_share": rest_share,
                               "alerted": (attribute, group) in open_groups})
    tested = len(candidates)
    # one-sided, Bonferroni over the groups tested, t with the fit's degrees of freedom
    level = (1 - inputs.confidence) / max(tested, 1)
    z = z_for_confidence(1 - 2 * level) if tested else 0.0
    rising = []
    for c in candidates:
        c["limit"] = float(student_t.ppf(1 - level, c["df"]))
        c["significant"] = c["t"] > c["limit"]
        # losing: a significantly rising shortfall that is a shortfall now (fitted at the
        # week's end, and this week's share below the rest's with enough support)
        if (c["significant"] and c["share"] is not None and c["rest_share"]
                and c["share"] < c["rest_share"] and c["shortfall_at_end"] > 0):
            margin = c["share"] - FOUR_FIFTHS * c["rest_share"]
            c["days_to_cross"] = 0.0 if margin <= 0 else margin / c["slope"]
            rising.append(c)
    rising.sort(key=lambda c: (c["days_to_cross"], c["attribute"], c["group"]))
    silent = [c for c in rising if not c["alerted"]]
    # a group of another attribute may hold an alerted one (a region holding a team): say so
    alerted_elsewhere = sorted(open_groups)
    for c in silent:
        c["open_alerts_elsewhere"] = [f"{a}={g}" for a, g in alerted_elsewhere
                                      if a != c["attribute"]][:3]
    return {"tested": tested, "z_limit": z, "min_points": MIN_TREND_BINS, "rising": rising,
            "silent": silent,
            "first": silent[0] if silent else None,
            "days": [d.isoformat() for d in days], "series": series}


def _audits(inputs: ReportInputs, windows: _Windows) -> dict[str, Any]:
    z = z_for_confidence(inputs.confidence)
    records = sorted(inputs.audits, key=lambda r: (str(r.get("decided_at")),
                                                   str(r.get("decision_id"))))
    reasons: dict[str, int] = defaultdict(int)
    ready = agree = 0
    flips: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    per_day: dict[str, int] = defaultdict(int)
    tz = zone(inputs.week.tz)
    flipped_records: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []
    for record in records:
        for reason in record.get("sampled_because", []) or []:
            reasons[str(reason)] += 1
        try:
            day = dt.datetime.fromisoformat(str(record["decided_at"])).astimezone(tz).date()
            per_day[day.isoformat()] += 1
        except (KeyError, ValueError):
            pass
        explanations = record.get("explanations") or {}
        shadow = explanations.get("shadow") or {}
        if shadow.get("ready"):
            ready += 1
            agree += bool(shadow.get("agrees"))
        group_flips = explanations.get("group_flips")
        state = record.get("group_state") or {}
        if isinstance(group_flips, dict) and group_flips.get("checked"):
            flipped_attrs = {f.get("attribute") for f in group_flips.get("flipped", [])}
            keys = _event_attributes(record)
            for attribute, held in state.items():
                # only an attribute of the event itself is flipped (never a pair of them)
                if isinstance(held, dict) and "group" in held and (
                        not isinstance(keys, dict) or attribute in keys):
                    cell = flips[(attribute, str(held["group"]))]
                    cell[1] += 1
                    cell[0] += attribute in flipped_attrs
            if group_flips.get("flipped"):
                flipped_records.append((record, shadow, group_flips))
    examples = _pick_examples(flipped_records, inputs.currency)
    for record in records:  # then plain ones, so there are examples in a quiet week
        if len(examples) >= EXAMPLES:
            break
        explanations = record.get("explanations") or {}
        if not (explanations.get("group_flips") or {}).get("flipped"):
            examples.append(_example(record, explanations.get("shadow") or {}, {},
                                     record.get("group_state") or {}, inputs.currency))
    flip_rows: list[dict[str, Any]] = []
    for (attribute, group), (k, n) in sorted(flips.items()):
        lo, hi = wilson_interval(k, n, z)
        flip_rows.append({"attribute": attribute, "group": group, "flipped": k, "checked": n,
                          "rate": k / n if n else None, "low": lo, "high": hi})
    flip_rows.sort(key=lambda r: (-(r["rate"] or 0.0), r["attribute"], r["group"]))
    placements = windows.stream.get("placements", 0)
    audited = windows.stream.get("audited", 0)
    lo, hi = wilson_interval(audited, placements, z)
    return {"records": len(records), "emptied": inputs.audits_emptied,
            "reasons": dict(sorted(reasons.items())), "shadow_ready": ready,
            "shadow_agreement": agree / ready if ready else None,
            "flips": flip_rows[:2 * SHOWN_GROUPS],
            "flips_hidden": max(0, len(flip_rows) - 2 * SHOWN_GROUPS),
            "per_day": dict(sorted(per_day.items())), "examples": examples,
            "coverage": audited / placements if placements else None,
            "coverage_low": lo, "coverage_high": hi, "audited": audited,
            "placements": placements, "target": inputs.audit_sample_rate,
            "coverage_ok": placements == 0 or lo <= inputs.audit_sample_rate <= hi
            or audited >= inputs.audit_sample_rate * placements}


def _event_attributes(record: dict[str, Any]) -> dict[str, Any] | None:
    """The ``attributes`` of a record's archived event (its JSON text), None if unreadable."""
    try:
        attributes = json.loads(record["event"]).get("attributes")
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return attributes if isinstance(attributes, dict) else None


def _pick_examples(candidates: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]],
                   currency: str) -> list[dict[str, Any]]:
    """Flipped decisions to show: those audited while an alert was open on their groups
    first, then one a day across the week (deterministic: by decision time)."""
    ordered = sorted(candidates, key=lambda c: (not c[0].get("open_alerts"),
                                                str(c[0].get("decided_at")),
                                                str(c[0].get("decision_id"))))
    chosen: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []
    days: set[str] = set()
    for candidate in ordered:  # a spread of days first
        day = str(candidate[0].get("decided_at"))[:10]
        if day not in days and len(chosen) < EXAMPLES:
            chosen.append(candidate)
            days.add(day)
    for candidate in ordered:
        if len(chosen) >= EXAMPLES:
            break
        if all(candidate is not c for c in chosen):
            chosen.append(candidate)
    chosen.sort(key=lambda c: (str(c[0].get("decided_at")), str(c[0].get("decision_id"))))
    return [_example(r, shadow, flips, r.get("group_state") or {}, currency)
            for r, shadow, flips in chosen]


def _example(record: dict[str, Any], shadow: dict[str, Any], group_flips: dict[str, Any],
             state: dict[str, Any], currency: str) -> dict[str, Any]:
    """One audited decision in plain language."""
    decision = record.get("decision") or {}
    groups = ", ".join(f"{a} {h.get('group')}" for a, h in sorted(state.items())
                       if isinstance(h, dict))
    action = str(decision.get("action", "?"))
    label = decision.get("label", action)
    did = {"place": f"placed on {label}", "queue": "held in the queue",
           "preempt": "preempted", "reject": "rejected"}.get(action, action)
    lines = [f"Decision {record.get('decision_id')} ({groups}) at {record.get('decided_at')}: "
             f"{did}."]
    if shadow.get("ready"):
        if shadow.get("agrees"):
            lines.append(f"The shadow model agrees ({shadow.get('predicted')}, "
                         f"p = {float(shadow.get('probability', 0)):.2f}).")
        else:
            lines.append(f"The shadow model would have chosen {shadow.get('predicted')} "
                         f"(p = {float(shadow.get('probability', 0)):.2f}).")
    for flip in (group_flips.get("flipped") or [])[:3]:
        lines.append(f"Had only its {flip.get('attribute')} been {flip.get('value')}, the "
                     f"shadow would have chosen {flip.get('predicted')} "
                     f"(p = {float(flip.get('probability', 0)):.2f}).")
    explanations = record.get("explanations") or {}
    drivers = explanations.get("cost_drivers") or []
    if drivers:
        lines.append(f"Largest cost driver: {drivers[0]}")
    change = explanations.get("smallest_change") or {}
    for question, answer in sorted(change.items()):
        if isinstance(answer, dict) and answer.get("alternatives"):
            first = answer["alternatives"][0]
            text = first.get("text") if isinstance(first, dict) else str(first)
            if text:
                lines.append(f"Smallest change ({question.replace('_', ' ')}): {text}")
                break
    return {"decision_id": record.get("decision_id"), "lines": lines,
            "reasons": record.get("sampled_because", [])}


def _findings(inputs: ReportInputs) -> dict[str, Any]:
    end = inputs.week.end.timestamp()
    start = inputs.week.start.timestamp()
    tz = inputs.week.tz
    open_rows: list[dict[str, Any]] = []
    resolved_rows: list[dict[str, Any]] = []
    for f in inputs.findings:
        detected = _ts(f.detected_at)
        if detected >= end:
            continue
        resolved = _ts(f.resolved_at) if f.resolved_at else None
        if resolved is None or resolved >= end:
            open_rows.append({"id": f.id, "kind": f.kind, "attribute": f.attribute,
                              "group": f.grp, "metric": f.metric, "summary": f.summary,
                              "detected_at": _iso(detected, tz), "age_days": (end - detected)
                              / 86400, "acknowledged": f.acknowledged_at is not None,
                              "acknowledged_by": f.acknowledged_by})
        elif resolved >= start:
            resolved_rows.append({"id": f.id, "kind": f.kind, "attribute": f.attribute,
                                  "group": f.grp, "metric": f.metric, "resolved_by": f.resolved_by,
                                  "detected_at": _iso(detected, tz),
                                  "resolved_at": _iso(resolved, tz),
                                  "age_hours": None if f.remediation_age_s is None
                                  else f.remediation_age_s / 3600})
    open_rows.sort(key=lambda r: (-r["age_days"], r["id"]))
    ages = [r["age_hours"] for r in resolved_rows if r["age_hours"] is not None]
    return {"open": open_rows, "resolved": resolved_rows,
            "median_remediation_hours": statistics.median(ages) if ages else None,
            "oldest_open_days": open_rows[0]["age_days"] if open_rows else None}


def _quality(windows: _Windows, inputs: ReportInputs) -> dict[str, Any]:
    s = windows.stream
    events = s.get("events_in", 0)
    rejected = s.get("rejected", 0)
    return {"events_in": events, "placements": s.get("placements", 0),
            "outcomes": s.get("outcomes", 0), "duplicates": s.get("duplicates", 0),
            "rejected": rejected, "rejected_share": rejected / events if events else None,
            "rejected_by_reason": dict(sorted(windows.rejected.items())),
            "orphaned_outcomes": s.get("orphaned_outcomes", 0),
            "joined": s.get("joined", 0), "late_events": s.get("late_events", 0),
            "clock_outliers": s.get("clock_outliers", 0),
            "previous_events_in": windows.stream_last.get("events_in", 0),
            "windows": len(windows.starts_this),
            "windows_in_week": (round((windows.end - windows.start) / windows.window_s)
                                if windows.window_s else None),
            "window_minutes": windows.window_s / 60 if windows.window_s else None,
            "alerts_bad_lines": inputs.alerts_bad_lines,
            "findings_error": inputs.findings_error,
            "history_bad_lines": inputs.history_bad_lines,
            "history_since": (inputs.history_first_day.isoformat()
                              if inputs.history_first_day else None),
            "chain_ok": inputs.chain_ok, "chain_records": inputs.chain_records,
            "chain_head": inputs.chain_head, "chain_problem": inputs.chain_problem}


def _overrides(windows: _Windows, inputs: ReportInputs,
               anomalies: list[dict[str, Any]]) -> dict[str, Any]:
    """Placements under manual overrides, by who applied them, and those still in force."""
    week_end = inputs.week.end.timestamp()
    by_whom: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    standing = []
    for (by, reason), (placements, latest) in sorted(windows.overrides.items()):
        who = by or "(not named)"
        state = ("no expiry given" if latest is None
                 else ("active at week end" if _ts(latest) >= week_end else "expired"))
        cell = by_whom[who]
        cell["placements"] += placements
        cell["overrides"] += 1
        cell[state] += 1
        if state != "expired":
            standing.append({"by": who, "reason": reason or "(none given)",
                             "placements": placements, "latest_expiry": latest,
                             "state": state})
    standing.sort(key=lambda r: (-r["placements"], r["by"], r["reason"]))
    rows = [{"by": who, "placements": c["placements"], "overrides": c["overrides"],
             "expired": c["expired"], "active": c["active at week end"],
             "no_expiry": c["no expiry given"]} for who, c in sorted(by_whom.items())]
    return {"by": rows, "standing": standing[:SHOWN_GROUPS],
            "standing_hidden": max(0, len(standing) - SHOWN_GROUPS),
            "other": windows.overrides_other,
            "expired_alerts": [a for a in anomalies if a["kind"] == "override_expired"]}


def _scorecard(disparity: list[dict[str, Any]], anomalies: list[dict[str, Any]],
               quality: dict[str, Any], audits: dict[str, Any]) -> list[dict[str, Any]]:
    """Traffic lights: red needs confidence or an open finding, amber a point estimate or a
    finding closed in the week, green neither."""
    rows = []
    for entry in disparity:
        attribute = entry["attribute"]
        mine = [a for a in anomalies if a["attribute"] == attribute
                or any(other[0] == attribute for other in a["same_population"])]
        still = [a for a in mine if a["open_at_week_end"]]

        def named(alerts: list[dict[str, Any]], attribute: str = attribute) -> str:
            parts = []
            for a in alerts[:3]:
                where = f"{a['attribute']}={a['group']}"
                inside = [f"{x}={g}" for x, g in a["same_population"] if x == attribute]
                parts.append(f"{a['kind']} on {inside[0] if inside else where} "
                             f"({a['metric']})" + (f", reported under {where}" if inside
                                                   and a["attribute"] != attribute else ""))
            more = f" and {len(alerts) - 3} more" if len(alerts) > 3 else ""
            return "; ".join(parts) + more
        if entry.get("none_preferred"):
            light, why = "grey", "no compared group got cheap tiers this week"
        elif "ratio" not in entry:
            light, why = "grey", (f"fewer than two groups with enough support "
                                  f"({entry['compared']} of {entry['groups']})")
        elif still or entry["confidently_below"]:
            light = "red"
            sure = entry.get("confident_groups", [])
            names = ", ".join(sure[:3]) + (f" and {len(sure) - 3} more" if len(sure) > 3 else "")
            why = (f"{len(still)} alert(s) open at week end: {named(still)}" if still else
                   f"parity ratio below 0.8 with confidence: {names}")
        elif mine or entry["below"]:
            light = "amber"
            why = (f"{len(mine)} alert(s) in the week, all resolved: {named(mine)}" if mine
                   else f"{entry['worst']}'s parity ratio is below 0.8 (not significant)")
        else:
            light, why = "green", "no finding; every compared group at or above 0.8"
        rows.append({"name": f"Equity: {attribute}", "light": light, "why": why,
                     "group": entry.get("flag_group"), "ratio": entry.get("flag_ratio"),
                     "low": entry.get("flag_low"), "high": entry.get("flag_high"),
                     "previous": entry.get("previous_ratio")})
    rejected_share = quality["rejected_share"]
    chain_ok = quality["chain_ok"]
    if chain_ok is False:
        light, why = "red", "the audit chain did not verify: " + quality["chain_problem"]
    elif chain_ok is None:
        light, why = "amber", "no audit store in the data directory: nothing to verify"
    elif quality["findings_error"]:
        light, why = "amber", "the findings store could not be read"
    elif quality["history_bad_lines"] or quality["alerts_bad_lines"]:
        light, why = "amber", (f"{quality['history_bad_lines'] + quality['alerts_bad_lines']} "
                               "line(s) of history or alerts.jsonl left out as unreadable")
    elif rejected_share is not None and rejected_share > 0.01:
        light, why = "amber", f"{_pct(rejected_share, 2)} of events rejected"
    elif quality["events_in"] == 0:
        light, why = "grey", "no events in the week"
    else:
        light, why = "green", "chain verified; rejected events under 1%"
    blank = {"group": None, "ratio": None, "low": None, "high": None, "previous": None}
    rows.append({"name": "Data quality", "light": light, "why": why, **blank})
    if audits["placements"] == 0:
        light, why = "grey", "no placements in the week"
    elif audits["coverage_ok"]:
        light, why = "green", (f"{_pct(audits['coverage'], 2)} of placements deep-audited "
                               f"(target {_pct(audits['target'], 1)})")
    else:
        light, why = "amber", (f"{_pct(audits['coverage'], 2)} audited, below the "
                               f"{_pct(audits['target'], 1)} target")
    rows.append({"name": "Deep-audit coverage", "light": light, "why": why, **blank})
    return rows


_FAMILY: Final = {"preferred_rate": "cheap tiers", "preferred_rate_high_priority": "cheap tiers"}


def _money_total(anomalies: list[dict[str, Any]]) -> tuple[float | None, str | None]:
    """The headline cost: per attribute, each group's anomalies priced once (a shortfall of
    its high-priority jobs is part of its overall shortfall; a runtime and a cost forecast
    drift are one cost gap: the largest figure of each kind counts), positive figures only;
    then the largest attribute's total. Attributes are not added: the same jobs are in a
    team, a department and a region."""
    # episodes of one alert are apart in time: they add up; alerts of one family on one group
    # overlap: the largest counts
    episodes: dict[tuple[str, str, str, str, str], float] = defaultdict(float)
    for a in anomalies:
        amount, attribute = a["amount"], a["attribute"]
        if amount is None or attribute is None or amount <= 0:
            continue
        family = "forecast" if a["kind"] == "forecast_drift" else _FAMILY.get(
            a["metric"], a["metric"])
        episodes[(attribute, a["group"] or "", family, a["kind"], a["metric"])] += amount
    best: dict[tuple[str, str, str], float] = {}
    for (attribute, group, family, _, _), amount in episodes.items():
        key = (attribute, group, family)
        best[key] = max(best.get(key, 0.0), amount)
    by_attribute: dict[str, float] = defaultdict(float)
    for (attribute, _, _), amount in best.items():
        by_attribute[attribute] += amount
    if not by_attribute:
        return None, None
    attribute, amount = max(by_attribute.items(), key=lambda item: (item[1], item[0]))
    return amount, attribute


def build(inputs: ReportInputs) -> dict[str, Any]:
    """The report's figures, JSON-ready (the templates and ``report.json`` read the same)."""
    windows = _Windows(inputs.history, inputs.week)
    disparity = _disparity(windows, inputs)
    anomalies = _anomalies(windows, inputs)
    open_groups = {(a["attribute"], a["group"]) for a in anomalies if a["open_at_week_end"]}
    open_groups |= {(attribute, group) for a in anomalies if a["open_at_week_end"]
                    for attribute, group in a["same_population"]}  # reported inside another
    quality = _quality(windows, inputs)
    audits = _audits(inputs, windows)
    total = _money_total(anomalies)
    week = inputs.week
    return {
        "week": week.label, "time_zone": week.tz,
        "start": week.start.isoformat(), "end": week.end.isoformat(),
        "currency": inputs.currency, "confidence": inputs.confidence,
        "min_support": inputs.min_support,
        "scorecard": _scorecard(disparity, anomalies, quality, audits),
        "disparity": disparity,
        "other_rates": _other_rates(windows, inputs),
        "anomalies": anomalies,
        "money_total": total[0],
        "money_total_attribute": total[1],
        "money_total_text": _money(total[0], inputs.currency) if total[0] is not None else None,
        "forecast": _forecast(windows, inputs),
        "trends": _trends(windows, inputs, open_groups),
        "audits": audits,
        "overrides": _overrides(windows, inputs, anomalies),
        "findings": _findings(inputs),
        "quality": quality,
        "reproduce": {
            "config_hash": inputs.config_hash,
            "run_config_hash": inputs.summary.get("config_hash"),
            "inputs": inputs.summary.get("inputs", []),
            "placewatch_version": inputs.summary.get("placewatch_version"),
            "audit_head": {"records": inputs.chain_records, "hash": inputs.chain_head},
            "data_dir": inputs.data_dir, "config_file": inputs.config_file,
        },
    }
