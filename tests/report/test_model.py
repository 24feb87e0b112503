"""The report's figures on hand-made history: each method against a case worked by hand."""

from __future__ import annotations

import datetime as dt
from typing import Any

from detectors.alerts import Alert
from detectors.history import GroupWindow, StreamWindow
from report.model import ReportInputs, build
from report.week import Week

WEEK = Week.parse("2026-W46")  # 2026-11-09 .. 2026-11-16 UTC


def _window(group: str, hour: int, counts: dict[str, int], sums: dict[str, float] | None = None,
            attribute: str = "team") -> GroupWindow:
    start = dt.datetime(2026, 11, 9, tzinfo=dt.UTC) + dt.timedelta(hours=hour)
    end = start + dt.timedelta(hours=1)
    return GroupWindow(start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       attribute, group, counts, sums or {}, {})


def _inputs(history: list[Any], alerts: list[Alert] | None = None) -> ReportInputs:
    return ReportInputs(
        week=WEEK, history=history, history_bad_lines=0, history_first_day=None,
        alerts=alerts or [], alerts_bad_lines=0, findings=[], findings_error="", audits=[],
        audits_emptied=0, chain_ok=True, chain_records=0, chain_head="", chain_problem="",
        currency="USD", min_support=30, confidence=0.95, audit_sample_rate=0.02,
        config_hash="", summary={}, data_dir="d", config_file="")


def _shares(**groups: tuple[int, int]) -> list[GroupWindow]:
    return [_window(g, 0, {"tiered": n, "preferred": k, "decisions": n, "placed": n})
            for g, (k, n) in groups.items()]


def test_a_large_group_confidently_below_the_line_is_red_whatever_the_lowest_point() -> None:
    report = build(_inputs(_shares(best=(10_000, 20_000), big=(7_000, 20_000),
                                   small=(10, 40))))
    light = report["scorecard"][0]
    assert light["light"] == "red" and "big" in light["why"], light
    team = report["disparity"][0]
    assert team["worst"] == "small" and team["confident_groups"] == ["big"]


def test_nobody_on_cheap_tiers_is_grey_not_a_disparity() -> None:
    report = build(_inputs(_shares(a=(0, 10_000), z=(0, 50))))
    assert report["scorecard"][0]["light"] == "grey"


def test_katz_with_a_zero_count_holds_its_point_and_stays_below_one_for_a_big_group() -> None:
    team = build(_inputs(_shares(a=(0, 100), b=(50, 100))))["disparity"][0]
    row = next(r for r in team["rows"] if r["group"] == "a")
    assert row["ratio"] == 0.0 == row["ratio_low"] and row["ratio_high"] < 0.2
    # a small group with no cheap placement is the worst, however scarce cheap tiers are
    team = build(_inputs(_shares(a=(0, 30), b=(100, 10_000), c=(90, 10_000))))["disparity"][0]
    assert team["worst"] == "a" and team["ratio"] == 0.0


def test_the_other_rates_screen_says_no_when_the_rest_is_inside_the_interval() -> None:
    history = [_window(g, 0, {"decisions": 1000, "queued": q, "tiered": 10, "preferred": 5})
               for g, q in (("a", 240), ("b", 230), ("c", 235))]
    rows = {r["metric"]: r for r in build(_inputs(history))["other_rates"]}
    assert rows["queue_rate"]["clear_gap"] is False


def _alert(kind: str, group: str, metric: str, at: str, state: str = "firing",
           attribute: str = "team") -> Alert:
    return Alert(alert="PlacewatchX", state=state, fingerprint=f"{kind}{group}{metric}",
                 kind=kind, attribute=attribute, group=group, metric=metric,
                 severity="warning", value=0.3, reference=0.5, decision_id="d", event_index=0,
                 at=at, summary="s")


def test_the_front_page_cost_prices_each_group_once() -> None:
    history = []
    for hour in range(48):
        history.append(_window("g", hour, {"tiered": 100, "preferred": 20, "hp_tiered": 50,
                                           "hp_preferred": 10, "premium_spend_n": 80,
                                           "cheap_spend_n": 20},
                               {"premium_spend_sum": 240.0, "cheap_spend_sum": 20.0}))
        history.append(_window("h", hour, {"tiered": 100, "preferred": 60, "hp_tiered": 50,
                                           "hp_preferred": 30, "premium_spend_n": 40,
                                           "cheap_spend_n": 60},
                               {"premium_spend_sum": 120.0, "cheap_spend_sum": 60.0}))
    alerts = [_alert("equity_drift", "g", "preferred_rate", "2026-11-09T00:30:00Z"),
              _alert("equity_drift", "g", "preferred_rate_high_priority",
                     "2026-11-09T00:40:00Z")]
    report = build(_inputs(history, alerts))
    amounts = [a["amount"] for a in report["anomalies"]]
    # 48 windows x (0.6 - 0.2) x 100 withheld = 1920 placements, x (3.00 - 1.00) = 3840 USD
    assert round(amounts[0], 6) == 3840.0
    assert report["money_total"] == max(amounts)  # the high-priority part is not added


def test_an_alert_fired_and_resolved_inside_one_window_is_priced_over_that_window() -> None:
    history = [_window("g", 0, {"tiered": 100, "preferred": 20, "premium_spend_n": 80,
                                "cheap_spend_n": 20},
                       {"premium_spend_sum": 240.0, "cheap_spend_sum": 20.0}),
               _window("h", 0, {"tiered": 100, "preferred": 60, "premium_spend_n": 40,
                                "cheap_spend_n": 60},
                       {"premium_spend_sum": 120.0, "cheap_spend_sum": 60.0})]
    alerts = [_alert("equity_drift", "g", "preferred_rate", "2026-11-09T00:10:00Z"),
              _alert("equity_drift", "g", "preferred_rate", "2026-11-09T00:20:00Z",
                     state="resolved")]
    (anomaly,) = build(_inputs(history, alerts))["anomalies"]
    assert round(anomaly["amount"], 6) == 80.0 and anomaly["resolved_at"] is not None


def test_hours_with_data_count_distinct_windows() -> None:
    parts = [StreamWindow("2026-11-09T00:00:00Z", "2026-11-09T01:00:00Z", {"events_in": 3}),
             StreamWindow("2026-11-09T00:00:00Z", "2026-11-09T01:00:00Z", {"events_in": 2})]
    quality = build(_inputs(parts))["quality"]
    assert (quality["windows"], quality["windows_in_week"], quality["events_in"]) == (1, 168, 5)


def test_the_scorecard_shows_the_group_its_light_is_about() -> None:
    report = build(_inputs(_shares(best=(6000, 10_000), small=(10, 30), big=(4500, 10_000))))
    row = report["scorecard"][0]
    assert row["light"] == "red" and row["group"] == "big" and row["high"] < 0.8


def _trend_history(x_share: Any, x_this_week: int) -> list[GroupWindow]:
    """Two weeks of hourly windows: teams r1..r3 at 55%, x at x_share(hour)."""
    history = []
    monday = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)  # the week before WEEK
    for hour in range(14 * 24):
        start = monday + dt.timedelta(hours=hour)
        iso = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in (start, start + dt.timedelta(hours=1))]
        for group in ("r1", "r2", "r3"):
            history.append(GroupWindow(iso[0], iso[1], "team", group,
                                       {"tiered": 100, "preferred": 55}))
        n = 40 if hour < 7 * 24 else x_this_week
        if n:
            history.append(GroupWindow(iso[0], iso[1], "team", "x",
                                       {"tiered": n, "preferred": round(n * x_share(hour))}))
    return history


def test_a_better_served_group_coming_back_to_the_rest_is_not_losing() -> None:
    # x slides from 75% to 55% over last week, then has almost nothing this week
    history = _trend_history(lambda h: 0.75 - 0.2 * min(h, 167) / 167, 0)
    history += [_window("x", 0, {"tiered": 3, "preferred": 1})]
    trends = build(_inputs(history))["trends"]
    assert trends["rising"] == [] and trends["first"] is None


def test_a_group_sliding_below_the_rest_without_an_alert_would_lose_first() -> None:
    history = _trend_history(lambda h: 0.58 - 0.12 * h / 335, 40)
    trends = build(_inputs(history))["trends"]
    assert trends["first"] is not None and trends["first"]["group"] == "x", trends["rising"]
