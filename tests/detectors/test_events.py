"""Decoding per the v1 contract: valid events accepted, every bad input rejected with a reason."""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.events import (
    REJECTION_REASONS,
    RESERVED_IDS,
    Outcome,
    Placement,
    Rejection,
    decode_event,
)
from detectors.pipeline import AuditCore, CoreConfig
from tests.helpers import BAD_INPUTS, CONTRACT, line, outcome, placement

SCHEMAS = {name: json.loads((CONTRACT / f"{name}.schema.json").read_text())
           for name in ("placement", "outcome")}


def test_contract_examples_are_accepted() -> None:
    ev = decode_event(line(placement(override={"by": "ops", "reason": "rescue",
                                               "expires_at": "2026-11-03T08:15:00Z"})))
    assert isinstance(ev, Placement)
    assert ev.queue_wait_s == pytest.approx(108.0)
    assert ev.decision.tier == "spot"
    assert isinstance(decode_event(line(outcome())), Outcome)


def test_only_required_fields_suffice() -> None:
    minimal = {"event_type": "placement", "schema_version": 1, "decision_id": "d",
               "job_id": "j", "decided_at": "2026-11-02T08:15:00+02:00", "attributes": {},
               "decision": {"action": "queue"}}
    ev = decode_event(line(minimal))
    assert isinstance(ev, Placement)
    assert ev.queue_wait_s is None


def test_unknown_fields_are_ignored() -> None:
    assert isinstance(decode_event(line(placement(extra_field={"x": 1}))), Placement)


@pytest.mark.parametrize(("reason", "raw"), BAD_INPUTS, ids=[r for r, _ in BAD_INPUTS])
def test_each_bad_input_is_rejected_with_its_reason(reason: str, raw: bytes) -> None:
    result = decode_event(raw)
    assert isinstance(result, Rejection)
    assert result.reason == reason, result.detail
    assert result.reason in REJECTION_REASONS
    assert result.detail


def test_every_reason_code_is_reachable() -> None:
    assert {r for r, _ in BAD_INPUTS} == set(REJECTION_REASONS)


# -- property: >= 10,000 generated payloads -------------------------------------------------

_ts = st.sampled_from(["2026-11-02T08:15:00Z", "2026-11-02T08:15:00.5+01:00",
                       "2026-11-02T08:15:00", "2026-13-02T08:15:00Z", "", "0"])
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**20),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))


def _mutate(event: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    out = json.loads(json.dumps(event))
    for _ in range(data.draw(st.integers(1, 3))):
        target = out
        path = data.draw(st.sampled_from(
            [["decision_id"], ["schema_version"], ["event_type"], ["decided_at"],
             ["finished_at"], ["status"], ["attributes"], ["decision", "action"],
             ["decision", "price_per_hour"], ["decision", "hardware_generation"],
             ["job", "priority"], ["job", "requested", "cpu"], ["features", "spot_price"],
             ["submitted_at"], ["actual_runtime_s"], ["deadline_met"], ["job"]]))
        for key in path[:-1]:
            nxt = target.get(key) if isinstance(target, dict) else None
            if not isinstance(nxt, dict):
                break
            target = nxt
        else:
            key = path[-1]
            action = data.draw(st.sampled_from(["drop", "scalar", "timestamp", "negative"]))
            if action == "drop":
                target.pop(key, None)
            elif action == "scalar":
                target[key] = data.draw(_scalar)
            elif action == "timestamp":
                target[key] = data.draw(_ts)
            else:
                target[key] = -data.draw(st.floats(0.001, 1e6))
    return out


_ids = st.text(min_size=1, max_size=20).filter(lambda d: d not in RESERVED_IDS)
"""Decision ids a valid event may have (the reserved ones are rejected: test_signing.py)."""

_valid = st.one_of(
    st.builds(placement, decision_id=_ids,
              team=st.text(max_size=10), action=st.sampled_from(["place", "queue", "preempt",
                                                                 "reject"]),
              tier=st.one_of(st.none(), st.sampled_from(["spot", "on_demand", "reserved"]))),
    st.builds(outcome, decision_id=_ids,
              status=st.sampled_from(["succeeded", "failed", "preempted", "killed",
                                      "timeout"])),
)


def _encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, allow_nan=True).encode()


@st.composite
def payloads(draw: st.DrawFn) -> tuple[str, bytes, dict[str, Any] | None]:
    kind = draw(st.sampled_from(["valid", "mutated", "garbage", "json"]))
    if kind == "valid":
        event = draw(_valid)
        return kind, _encode(event), event
    if kind == "mutated":
        event = _mutate(draw(_valid), draw(st.data()))
        return kind, _encode(event), event
    if kind == "json":
        value = draw(st.recursive(_scalar, lambda c: st.lists(c, max_size=3)
                                  | st.dictionaries(st.text(max_size=5), c, max_size=3),
                                  max_leaves=8))
        return kind, _encode(value) if not isinstance(value, float) or math.isfinite(value) \
            else b"NaN", None
    return kind, draw(st.binary(max_size=64)), None


def _schema_valid(event: dict[str, Any]) -> bool:
    schema = SCHEMAS.get(str(event.get("event_type")))
    return schema is not None and jsonschema.Draft202012Validator(schema).is_valid(event)


@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(payloads())
def test_decoder_never_raises_and_accounts_for_everything(
        case: tuple[str, bytes, dict[str, Any] | None]) -> None:
    kind, raw, event = case
    result = decode_event(raw)
    assert isinstance(result, Placement | Outcome | Rejection)
    if kind == "valid":
        assert not isinstance(result, Rejection), result
    if not isinstance(result, Rejection) and event is not None:
        # the normative JSON Schema agrees with everything the decoder accepts
        assert _schema_valid(event), event
    core = AuditCore(CoreConfig())
    core.process(raw)
    effects = core.drain()
    assert core.events_in == 1 == core.placements + core.outcomes + core.rejected
    assert len(effects.dead_letters) == core.rejected
    if effects.dead_letters:
        assert effects.dead_letters[0].raw == raw


def test_decoded_events_are_not_tracked_by_the_garbage_collector() -> None:
    """Events held for the join cost full collections nothing (gc=False on every struct)."""
    import gc

    decoded = [decode_event(line(placement("d-gc", team="a", tier="spot"))),
               decode_event(line(outcome("d-gc")))]
    for event in decoded:
        assert not gc.is_tracked(event), type(event).__name__
    assert not gc.is_tracked(decoded[0].job) and not gc.is_tracked(decoded[0].decision)
