"""The processing core through its public behaviour: accounting, idempotency, joins, alerts."""

from __future__ import annotations

import datetime as dt
import json
import math
import pickle

import pytest

from detectors import AuditCore, CoreConfig, OutcomeJoiner, RecentIds
from detectors.audit_work import Explain
from tests.helpers import BAD_INPUTS, line, outcome, placement


def _run(lines: list[bytes], **config: object) -> AuditCore:
    core = AuditCore(CoreConfig(**config))  # type: ignore[arg-type]
    for raw in lines:
        core.process(raw)
    core.finish()
    return core


def test_every_event_is_accounted_for_exactly_once() -> None:
    lines = [line(placement(f"d-{i}")) for i in range(50)]
    lines += [line(outcome(f"d-{i}")) for i in range(40)]
    lines += [line(placement("d-3")), line(outcome("d-4"))]  # duplicates
    lines += [raw for _, raw in BAD_INPUTS]
    core = _run(lines)
    assert core.events_in == len(lines)
    assert (core.placements, core.outcomes, core.duplicates) == (50, 40, 2)
    assert core.rejected == len(BAD_INPUTS)
    assert core.events_in == core.placements + core.outcomes + core.duplicates + core.rejected
    assert sum(core.rejected_by_reason.values()) == core.rejected


def test_duplicates_are_not_applied_twice() -> None:
    core = _run([line(placement("d-1", tier="spot"))] * 5)
    team = core.ledger.groups["team"]["a"]
    assert (team.decisions, team.preferred, core.duplicates) == (1, 1, 4)


def test_outcome_before_placement_joins_and_late_ones_are_orphaned() -> None:
    core = _run([
        line(outcome("d-early", at="2026-11-02T09:00:00Z")),
        line(placement("d-early", at="2026-11-02T08:15:00Z")),
        line(outcome("d-ghost", at="2026-11-02T09:00:00Z")),
        line(placement("d-late", at="2026-11-02T12:00:00Z")),  # watermark moves 3 h on
    ], orphan_wait_s=3600.0, evaluate_every=1)
    assert core.joined == 1
    assert core.orphaned_outcomes == 1
    assert core.ledger.groups["team"]["a"].outcomes == 1


def test_outcomes_still_waiting_at_the_end_are_orphaned() -> None:
    core = _run([line(outcome("nobody"))])
    assert (core.outcomes, core.orphaned_outcomes, core.joined) == (1, 1, 0)


def test_dedup_horizon_is_bounded() -> None:
    ids = RecentIds(horizon=3)
    for key in "abcd":
        ids.seen_or_add(key)
    assert len(ids) == 3
    assert not ids.seen_or_add("a")  # forgotten: beyond the documented horizon


def test_joiner_releases_placements_past_capacity() -> None:
    joiner: OutcomeJoiner[str, str] = OutcomeJoiner(60, 3600, capacity=2)
    for i in range(3):
        joiner.add_placement(f"d{i}", f"p{i}", watermark=0.0)
    assert joiner.unmatched_placements == 1
    assert joiner.add_outcome("d0", "o0", watermark=0.0) is None  # released: now waits


def test_expired_override_alerts_once_with_who_and_how_much() -> None:
    override = {"by": "ops", "reason": "pin", "expires_at": "2026-11-02T06:00:00Z"}
    core = _run([line(placement(f"d-{i}", override=override)) for i in range(3)])
    alerts = core.drain().alerts
    assert [a.kind for a in alerts] == ["override_expired"]
    alert = alerts[0]
    assert alert.value == 2 * 3600 + 15 * 60
    assert alert.decision_id == "d-0" and alert.event_index == 0
    assert alert.at == "2026-11-02T08:15:00.000Z"
    assert "ops" in alert.summary


def test_override_without_expiry_is_a_finding_after_24_hours_of_use() -> None:
    override = {"by": "ops", "reason": "pin"}
    times = [f"2026-11-0{2 + h // 24}T{h % 24:02d}:15:00Z" for h in range(8, 8 + 31, 6)]
    core = _run([line(placement(f"d-{i}", override=override, at=t))
                 for i, t in enumerate(times)])
    alerts = core.drain().alerts
    assert len(alerts) == 1 and alerts[0].value == 6 * 3600.0  # 30 h of use, limit 24 h


def test_an_override_reused_after_a_pause_is_a_new_episode() -> None:
    override = {"by": "ops", "reason": "deadline rescue"}
    core = _run([line(placement("d-1", override=override, at="2026-11-02T08:15:00Z")),
                 line(placement("d-2", override=override, at="2026-11-03T09:15:00Z"))])
    assert core.drain().alerts == []


def test_each_expired_override_instance_alerts() -> None:
    first = {"by": "ops", "reason": "pin", "expires_at": "2026-11-02T06:00:00Z"}
    later = {"by": "ops", "reason": "pin", "expires_at": "2026-11-02T07:00:00Z"}
    core = _run([line(placement("d-1", override=first)), line(placement("d-2", override=later))])
    assert len(core.drain().alerts) == 2


def test_one_event_far_in_the_future_does_not_expire_every_join() -> None:
    lines = [line(placement(f"d-{i}")) for i in range(50)]
    lines.append(line(placement("d-future", at="2031-01-01T00:00:00Z")))
    lines += [line(outcome(f"d-{i}")) for i in range(50)]
    core = _run(lines, evaluate_every=10)
    assert core.joined == 50 and core.orphaned_outcomes == 0 and core.clock_outliers == 1


def test_alert_names_one_event_consistently() -> None:
    lines = []
    for i in range(2000):
        team = "a" if i % 2 else "b"
        cheap = (i % 10 < 7) if team == "a" else (i % 10 < 3)
        lines.append(line(placement(f"d-{i}", team=team, tier="spot" if cheap else "on_demand")))
        lines.append(line(outcome(f"d-{i}")))
    core = _run(lines, evaluate_every=100)
    alerts = core.drain().alerts
    assert alerts
    for alert in alerts:
        event = json.loads(lines[alert.event_index])
        assert event["decision_id"] == alert.decision_id
        assert event["decided_at"].replace(".000Z", "Z") == alert.at.replace(".000Z", "Z")


def test_standing_disparity_fires_once_and_names_the_group() -> None:
    lines = []
    for i in range(2000):
        team = "a" if i % 2 else "b"
        cheap = (i % 10 < 7) if team == "a" else (i % 10 < 3)  # 70% vs 30%
        lines.append(line(placement(f"d-{i}", team=team, tier="spot" if cheap else "on_demand")))
    core = _run(lines, evaluate_every=100)
    alerts = [a for a in core.drain().alerts if a.kind == "disparity"]
    assert [(a.attribute, a.group) for a in alerts] == [("team", "b")]
    assert alerts[0].reference == 0.8 and alerts[0].value < 0.8
    assert alerts[0].details["reference_group"] == "a"


def test_no_disparity_alert_below_minimum_support() -> None:
    lines = [line(placement(f"d-{i}", team="a" if i % 2 else "b",
                            tier="spot" if i % 2 else "on_demand")) for i in range(40)]
    core = _run(lines, evaluate_every=10, min_group_support=30)
    assert core.drain().alerts == []


def test_audit_sample_is_deterministic_and_near_the_rate() -> None:
    lines = [line(placement(f"d-{i}")) for i in range(5000)]
    first = [w.raw for w in _run(lines).drain().audit_work
             if isinstance(w, Explain)]
    second = [w.raw for w in _run(lines).drain().audit_work
              if isinstance(w, Explain)]
    assert first == second
    assert 60 <= len(first) <= 145  # 99.9% binomial interval around 100


def test_core_state_pickles_mid_stream_and_resumes_identically() -> None:
    lines = [line(placement(f"d-{i}", team="ab"[i % 2])) for i in range(300)]
    lines += [line(outcome(f"d-{i}")) for i in range(0, 300, 3)]
    whole = _run(lines)
    half = AuditCore(CoreConfig())
    for raw in lines[:150]:
        half.process(raw)
    half.drain()
    resumed = pickle.loads(pickle.dumps(half))
    for raw in lines[150:]:
        resumed.process(raw)
    resumed.finish()
    assert resumed.events_in == whole.events_in and resumed.joined == whole.joined
    for name, stats in whole.ledger.groups["team"].items():
        other = resumed.ledger.groups["team"][name]
        assert (other.decisions, other.preferred, other.outcomes) == (
            stats.decisions, stats.preferred, stats.outcomes)


def test_extreme_forecast_ratios_neither_crash_nor_poison_the_bias() -> None:
    core = _run([
        line(placement("d-tiny", decision={"action": "place", "tier": "spot",
                                            "predicted_runtime_s": 1e308})),
        line(outcome("d-tiny", actual_runtime_s=5e-324)),
        line(placement("d-huge", decision={"action": "place", "tier": "spot",
                                            "predicted_runtime_s": 5e-324})),
        line(outcome("d-huge", actual_runtime_s=1e308)),
    ], attributes=("team",))  # tracked from the first event (not admitted as seen)
    watch = core.ledger.groups["team"]["a"].forecast["runtime"]  # type: ignore[index]
    assert watch.count == 2 and math.isfinite(watch.sum)


def test_standing_disparity_resolves_when_the_ratio_recovers() -> None:
    lines = []
    for i in range(8000):
        team = "a" if i % 2 else "b"
        # team a 60% cheap; team b 40% at first, then 60% too: its since-start ratio recovers
        limit = 7 if team == "a" else (3 if i < 2000 else 6)
        cheap = i % 10 < limit
        lines.append(line(placement(f"d-{i}", team=team, tier="spot" if cheap else "on_demand")))
    core = _run(lines, evaluate_every=100)
    edges = [a for a in core.drain().alerts if a.kind == "disparity"]
    assert [(a.state, a.group) for a in edges] == [("firing", "b"), ("resolved", "b")]
    firing, resolved = edges
    assert firing.fingerprint == resolved.fingerprint
    assert resolved.value >= 0.8 > firing.value
    assert resolved.details["fired_event_index"] == firing.event_index
    assert not [k for k in core.alert_book.open_keys if k[0] == "disparity"]
    assert core.resolved_by_kind == {"disparity": 1}


def test_an_expired_override_resolves_once_it_is_no_longer_applied() -> None:
    override = {"by": "ops", "reason": "pin", "expires_at": "2026-11-02T06:00:00Z"}
    lines = [line(placement(f"d-{i}", override=override, at=f"2026-11-02T09:{i:02d}:00Z"))
             for i in range(3)]
    # the override is gone; placements go on, one a minute, for 100 minutes
    lines += [line(placement(f"e-{i}", at=f"2026-11-02T{10 + i // 60:02d}:{i % 60:02d}:00Z"))
              for i in range(100)]
    core = _run(lines, evaluate_every=1, override_resolve_after_s=3600.0)
    edges = [a for a in core.drain().alerts if a.kind == "override_expired"]
    assert [a.state for a in edges] == ["firing", "resolved"]
    firing, resolved = edges
    assert firing.fingerprint == resolved.fingerprint
    assert resolved.value == firing.value + 120.0  # past its limit when last applied (2 min on)
    # over an hour of event time and more than 50 placements without it: the 51st, at 10:50
    assert resolved.at == "2026-11-02T10:50:00.000Z"
    assert len(core.alert_book) == 0


def test_an_override_still_applied_stays_open() -> None:
    override = {"by": "ops", "reason": "pin", "expires_at": "2026-11-02T06:00:00Z"}
    lines = [line(placement(f"d-{i}", override=override,
                            at=f"2026-11-02T{9 + i // 60:02d}:{i % 60:02d}:00Z"))
             for i in range(0, 240, 10)]
    core = _run(lines, evaluate_every=1)
    assert [a.state for a in core.drain().alerts] == ["firing"]
    assert len(core.alert_book) == 1


def _override_placement(i: int, at: str, **override: str) -> bytes:
    body = {"by": "ops", "reason": "pin", "expires_at": "2026-11-02T06:00:00Z", **override}
    return line(placement(f"o-{i}", override=body, at=at))


def test_an_override_still_applied_behind_other_traffic_does_not_flap() -> None:
    """Overridden placements arrive 90 minutes behind the rest (a lagging shard, or a second
    input file): the override is still applied, so its alert stays open."""
    lines = []
    for i in range(3000):
        minute = 180 + i // 10
        lines.append(line(placement(f"d-{i}", at=f"2026-11-03T{minute // 60 % 24:02d}:"
                                               f"{minute % 60:02d}:00Z")))
        if i % 10 == 0:
            late = minute - 90
            lines.append(_override_placement(i, f"2026-11-03T{late // 60 % 24:02d}:"
                                                f"{late % 60:02d}:00Z"))
    core = _run(lines, evaluate_every=50)
    assert [a.state for a in core.drain().alerts if a.kind == "override_expired"] == ["firing"]


def test_one_far_future_sighting_does_not_hold_an_override_alert_open() -> None:
    lines = [_override_placement(0, "2026-11-02T09:00:00Z"),
             _override_placement(1, "2027-11-02T09:00:00Z")]  # one bad clock
    lines += [line(placement(f"e-{i}", at=f"2026-11-02T{10 + i // 60:02d}:{i % 60:02d}:00Z"))
              for i in range(200)]
    core = _run(lines, evaluate_every=10)
    assert core.clock_outliers == 1
    edges = [a for a in core.drain().alerts if a.kind == "override_expired"]
    assert [a.state for a in edges] == ["firing", "resolved"]
    # how far past its limit it was when last applied: counted at the capped time, not a year
    assert edges[1].value < 2 * 86400


def test_overrides_whose_texts_run_together_are_two_alerts() -> None:
    core = _run([_override_placement(0, "2026-11-02T09:00:00Z", by="ops|oncall", reason="pin"),
                 _override_placement(1, "2026-11-02T09:01:00Z", by="ops", reason="oncall|pin")])
    alerts = [a for a in core.drain().alerts if a.kind == "override_expired"]
    assert len(alerts) == 2 and alerts[0].fingerprint != alerts[1].fingerprint


@pytest.mark.parametrize(("detector", "within"), [
    ("cusum", 1000), ("adwin", 1500), ("page_hinkley", 5000), ("adwin:delta=0.05", 1500),
    ("page_hinkley:threshold=10,delta=0.5,min_instances=5", 1500)])
def test_each_configured_drift_detector_finds_a_strong_shift(detector: str, within: int) -> None:
    """River's ADWIN and Page-Hinkley run in place of the CUSUM on the same contrast."""
    t0 = dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC)
    lines = []
    for i in range(30_000):
        team = "abcd"[i % 4]
        cheap = (i * 7919 % 100) < (15 if i > 15_000 and team == "b" else 60)
        at = (t0 + dt.timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
        lines.append(line(placement(f"d-{i}", team=team, tier="spot" if cheap else "on_demand",
                                    at=at, submitted_at=t0.isoformat())))
    core = _run(lines, drift_detector=detector, evaluate_every=100)
    found = [a for a in core.drain().alerts if a.kind == "equity_drift"]
    assert {(a.group, a.metric) for a in found} == {("b", "preferred_rate"),
                                                   ("b", "preferred_rate_high_priority")}
    assert all(15_000 < a.event_index < 15_000 + within for a in found), found


def test_an_unknown_drift_detector_is_refused_naming_the_valid_ones() -> None:
    for wrong in ("kswin", "adwin:delta=0", "page_hinkley:threshold=x", "adwin:clock=3",
                  "page_hinkley:min_instances=0.5"):
        with pytest.raises(ValueError, match="cusum, adwin or page_hinkley, optionally"):
            CoreConfig(drift_detector=wrong)
    tuned = CoreConfig(drift_detector="page_hinkley:threshold=10,delta=0.5,min_instances=5")
    assert tuned.drift_detector.startswith("page_hinkley:")


@pytest.mark.parametrize("detector", ["cusum", "adwin", "page_hinkley"])
def test_each_drift_detector_resolves_a_reverted_shift_and_spares_the_others(
        detector: str) -> None:
    t0 = dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC)
    lines = []
    for i in range(60_000):
        team = "abcd"[i % 4]
        shifted = 15_000 < i < 25_000 and team == "b"
        cheap = (i * 7919 % 100) < (15 if shifted else 60)
        at = (t0 + dt.timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
        lines.append(line(placement(f"d-{i}", team=team, tier="spot" if cheap else "on_demand",
                                    at=at, submitted_at=t0.isoformat())))
    core = _run(lines, drift_detector=detector, evaluate_every=100)
    edges = [a for a in core.drain().alerts if a.kind == "equity_drift"]
    assert {a.group for a in edges} == {"b"}, [(a.state, a.group, a.event_index) for a in edges]
    for metric in ("preferred_rate", "preferred_rate_high_priority"):
        states = [(a.state, a.event_index) for a in edges if a.metric == metric]
        assert [s for s, _ in states] == ["firing", "resolved"], states
        assert 15_000 < states[0][1] < 25_000 < states[1][1]
    if detector != "cusum":
        assert edges[0].details == {"support": edges[0].details["support"],
                                    "detector": detector}


def test_alerts_carried_from_a_restart_close_before_anything_fires_again() -> None:
    first = _run([_override_placement(0, "2026-11-02T09:00:00Z")])
    (left_open,) = first.drain().alerts
    core = AuditCore(CoreConfig())
    core.carry_over([left_open])
    core.process(_override_placement(1, "2026-11-02T09:05:00Z"))  # still applied
    edges = core.drain().alerts
    assert [(a.state, a.fingerprint) for a in edges] == [
        ("resolved", left_open.fingerprint), ("firing", left_open.fingerprint)]
    assert "placewatch restarted" in edges[0].summary
    assert len(core.alert_book) == 1 and core.alerts_closed_on_restart == 1


def test_sparse_groups_that_cannot_alarm_do_not_raise_the_family_threshold() -> None:
    """Watches join the false-alarm budget once their reference is learned: 600 groups of a
    sparse attribute (about 20 placements each, never warmed up) leave the threshold of the
    watches that can alarm where it was."""
    import orjson

    from simulator import SCENARIOS, Simulation

    plain, sparse = [], []
    for raw in Simulation(SCENARIOS["baseline"], 20_000, seed=3):
        plain.append(raw)
        event = orjson.loads(raw)
        if event["event_type"] == "placement":
            event["attributes"]["project"] = f"p{int(event['job_id'].split('-')[1]) % 600}"
            raw = orjson.dumps(event)
        sparse.append(raw)
    config = {"max_groups_per_attribute": 1000, "audit_sample_rate": 0.0}
    without, with_sparse = _run(plain, **config), _run(sparse, **config)
    assert len(with_sparse.ledger.groups["project"]) == 600
    watching = sum(d.watches for d in without.detectors.values())
    assert watching > 0
    assert sum(d.watches for d in with_sparse.detectors.values()) == watching
    assert with_sparse.family_threshold == without.family_threshold


def test_the_budget_counts_exactly_the_watches_whose_reference_is_learned() -> None:
    """At every evaluation, each detector's ``watches`` is its number of tests that can alarm:
    equity watches with a reference ratio, queue-wait watches with a standing, and both sides
    of every forecast watch past its warm-up; none counted before, none twice."""
    from simulator import SCENARIOS, Simulation

    core = AuditCore(CoreConfig(audit_sample_rate=0.0))
    seen = set()
    for i, raw in enumerate(Simulation(SCENARIOS["equity_drift"], 40_000, seed=2), 1):
        core.offer(raw)
        core.drain()
        if i % 1000:
            continue
        tables = [s for table in core.ledger.groups.values() for s in table.values()]
        equity = sum(w.ratio is not None for s in tables for w in (s.drift or {}).values())
        forecast = 2 * sum(not w.warming for s in tables for w in (s.forecast or {}).values())
        wait = sum(w.reference is not None
                   for w in core.detectors["wait_drift"].drift.watches.values())  # type: ignore[attr-defined]
        counted = (core.detectors["equity_drift"].watches,
                   core.detectors["forecast_drift"].watches,
                   core.detectors["wait_drift"].watches)
        assert counted == (equity, forecast, wait), i
        seen.add(counted)
    assert len(seen) > 5  # watches joined as the run went on
