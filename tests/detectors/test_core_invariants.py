"""Hypothesis: the core's invariants hold on any stream of valid, duplicated and bad events.

Every event is accounted for exactly once; an alert never resolves without having fired, never
fires twice while open, and keeps its identity across its edges; open alerts = fired − resolved.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors import AuditCore, CoreConfig
from tests.helpers import BAD_INPUTS, line, outcome, placement

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)

_op = st.one_of(
    st.tuples(st.just("place"), st.sampled_from("abc"), st.booleans(), st.integers(0, 600),
              st.sampled_from(["place", "place", "place", "queue", "reject", "preempt"]),
              st.sampled_from([None, "past", "future"])),
    st.tuples(st.just("outcome"), st.integers(0, 10**6), st.booleans()),
    st.tuples(st.just("duplicate"), st.integers(0, 10**6)),
    st.tuples(st.just("bad"), st.integers(0, len(BAD_INPUTS) - 1)),
)


def _stream(ops: list[tuple[Any, ...]], favour: str) -> list[bytes]:
    """Turn ops into event bytes; halfway through, the cheap tier starts to favour one team
    (so detectors have something to find, fire and sometimes resolve)."""
    out: list[bytes] = []
    placed: list[str] = []
    now = T0
    for i, op in enumerate(ops):
        if op[0] == "place":
            _, team, cheap, step, action, override = op
            now += dt.timedelta(seconds=step)
            if i > len(ops) // 2:
                cheap = cheap or team == favour
            extra: dict[str, Any] = {}
            if override is not None:
                expires = now + dt.timedelta(hours=-2 if override == "past" else 2)
                extra["override"] = {"by": "ops", "reason": f"pin {team}",
                                     "expires_at": expires.isoformat()}
            decision_id = f"d-{i}"
            at = now.isoformat().replace("+00:00", "Z")
            event = placement(decision_id, team=team, action=action,
                              tier=("spot" if cheap else "on_demand") if action == "place"
                              else None, at=at, submitted_at=T0.isoformat(), **extra)
            out.append(line(event))
            placed.append(decision_id)
        elif op[0] == "outcome" and placed:
            decision_id = placed[op[1] % len(placed)]
            finished = (now + dt.timedelta(minutes=5)).isoformat()
            out.append(line(outcome(decision_id, at=finished, started_at=T0.isoformat(),
                                    deadline_met=op[2])))
        elif op[0] == "duplicate" and out:
            out.append(out[op[1] % len(out)])
        elif op[0] == "bad":
            out.append(BAD_INPUTS[op[1]][1])
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_op, min_size=300, max_size=1500), favour=st.sampled_from("abc"),
       every=st.sampled_from([7, 50, 200]))
def test_core_invariants_hold_on_any_stream(ops: list[tuple[Any, ...]], favour: str,
                                            every: int) -> None:
    core = AuditCore(CoreConfig(evaluate_every=every, min_group_support=5, drift_warmup=20,
                                drift_min_batches=2, forecast_warmup=5,
                                override_resolve_after_s=600.0))
    edges = []
    for raw in _stream(ops, favour):
        core.process(raw)
        edges.extend(core.drain().alerts)
        assert core.events_in == (core.placements + core.outcomes + core.duplicates
                                  + core.rejected)
    core.finish()
    edges.extend(core.drain().alerts)
    open_now: dict[str, Any] = {}
    for alert in edges:
        if alert.state == "firing":
            assert alert.fingerprint not in open_now
            open_now[alert.fingerprint] = alert
        else:
            assert alert.state == "resolved"
            first = open_now.pop(alert.fingerprint)  # never resolves without having fired
            assert (alert.kind, alert.attribute, alert.group, alert.metric) == \
                (first.kind, first.attribute, first.group, first.metric)
            assert alert.event_index >= first.event_index
    assert core.alerts_fired - core.alerts_resolved == len(core.alert_book) == len(open_now)
    assert sorted(a.fingerprint for _, a, _ in core.alert_book.open_alerts()) == \
        sorted(open_now)
    assert sum(core.alerts_by_kind.values()) == core.alerts_fired
    assert sum(core.resolved_by_kind.values()) == core.alerts_resolved
