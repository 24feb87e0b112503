"""Small builders of contract events for tests (each test makes its own inputs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "tests" / "contract"


def placement(decision_id: str = "d-1", team: str = "a", action: str = "place",
              tier: str | None = "spot", at: str = "2026-11-02T08:15:00.000Z",
              **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_type": "placement",
        "schema_version": 1,
        "decision_id": decision_id,
        "job_id": f"j-{decision_id}",
        "decided_at": at,
        "submitted_at": "2026-11-02T08:13:12.000Z",
        "attributes": {"team": team, "region": "eu-west"},
        "job": {"job_class": "batch", "priority": 2,
                "requested": {"cpu": 8, "memory_gb": 32, "gpu": 1},
                "deadline": "2026-11-02T12:00:00Z", "budget_code": "RSCH-114"},
        "decision": {"action": action, "predicted_runtime_s": 3600, "price_per_hour": 0.021},
        "features": {"spot_price": 0.021},
    }
    if tier is not None:
        event["decision"]["tier"] = tier
    event.update(extra)
    return event


def outcome(decision_id: str = "d-1", status: str = "succeeded",
            at: str = "2026-11-02T09:17:40Z", **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_type": "outcome",
        "schema_version": 1,
        "decision_id": decision_id,
        "job_id": f"j-{decision_id}",
        "finished_at": at,
        "started_at": "2026-11-02T08:15:05Z",
        "status": status,
        "actual_runtime_s": 3755,
        "deadline_met": True,
    }
    event.update(extra)
    return event


def line(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


BAD_INPUTS: list[tuple[str, bytes]] = [
    ("invalid_json", b'{"event_type": "placement", '),
    ("invalid_json", b"hello"),
    ("invalid_utf8", b'{"event_type": "\xff\xfe"}'),
    ("non_finite_number", line(placement("bad-nan")).replace(b'"price_per_hour": 0.021',
                                                             b'"price_per_hour": NaN')),
    ("non_finite_number", line(placement("bad-inf")).replace(b'"spot_price": 0.021',
                                                             b'"spot_price": 1e999')),
    ("missing_field", line({k: v for k, v in placement("bad-miss").items() if k != "job_id"})),
    ("wrong_type", line(placement("bad-type", job={"priority": "high"}))),
    ("invalid_value", line(placement("bad-action", action="teleport"))),
    ("unsupported_schema_version", line(placement("bad-ver", schema_version=2))),
    ("naive_timestamp", line(placement("bad-tz", at="2026-11-02T08:15:00"))),
    ("invalid_timestamp", line(placement("bad-ts", at="yesterday"))),
    ("negative_value", line(outcome("bad-neg", actual_cost=-1))),
    ("negative_duration", line(placement("bad-dur", at="2026-11-02T08:00:00Z"))),
    ("negative_duration", line(outcome("bad-dur2", at="2026-11-02T08:00:00Z"))),
    ("invalid_value", line(outcome("bad-status", status="exploded"))),
    ("wrong_type", b"[1, 2, 3]"),
    ("too_large", b'{"pad": "' + b"x" * (1 << 20) + b'"}'),
]
"""(expected reason, raw bytes): one or more of every kind of bad input the contract names."""


def placewatch(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess (as a user would)."""
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
BAD_INPUTS += [
    ("too_large", line(outcome("bad-deep"))[:-1] + b', "deep": ' + b"[" * 3000 + b"]" * 3000
     + b"}"),
    ("invalid_timestamp", line(placement("bad-year", at="9999-12-31T23:59:59-01:00"))),
    ("invalid_timestamp", line(outcome("bad-year1", at="0001-01-01T00:00:00+01:00",
                                       started_at="0001-01-01T00:00:00+01:00"))),
    ("invalid_json", b'{"team": "NaNcy"'),
    ("out_of_range", line(placement("bad-big", job={"priority": 10 ** 30}))),
    ("out_of_range", line(placement("bad-big2", job={"priority": -(2 ** 53)}))),
    ("out_of_range", line(placement("bad-big3")).replace(
        b'"price_per_hour": 0.021',
        b'"price_per_hour": 0.021, "hardware_generation": 9223372036854775808')),
]
