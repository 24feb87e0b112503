"""Valid but hostile inputs, each replayed in a process of its own with its peak memory and time
against a clean input of the same size in the same run (``placewatch bench hostile``).

The cases are the ones that once exhausted the service: a line far over the 1 MiB limit, large
placements that never get an outcome, a new set of ``features`` keys on every event, and a new
``team`` value on every event. Each input is generated here (nothing from a real trace).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = ["CASES", "Measured", "memory_budget_mib", "replay_measured", "write_case"]

_T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def _at(seconds: float) -> str:
    return (_T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _placement(i: int, team: str = "a", features: dict[str, float] | None = None,
               tier: str = "spot") -> dict[str, object]:
    return {"event_type": "placement", "schema_version": 1, "decision_id": f"d-{i}",
            "job_id": f"j-{i}", "decided_at": _at(i), "submitted_at": _at(i - 5),
            "attributes": {"team": team, "region": "eu-west"},
            "job": {"job_class": "batch", "priority": 2,
                    "requested": {"cpu": 8, "memory_gb": 32, "gpu": 0},
                    "deadline": _at(i + 7200)},
            "decision": {"action": "place", "tier": tier, "predicted_runtime_s": 3600,
                         "price_per_hour": 0.02},
            "features": features or {"spot_price": 0.02}}


def _outcome(i: int) -> dict[str, object]:
    return {"event_type": "outcome", "schema_version": 1, "decision_id": f"d-{i}",
            "job_id": f"j-{i}", "finished_at": _at(i + 60), "status": "succeeded",
            "actual_runtime_s": 3700, "deadline_met": True}


def _stream(events: int, team: Callable[[int], str],
            features: Callable[[int], dict[str, float] | None]) -> Iterator[dict[str, object]]:
    """Placements (tiers alternating) with an outcome 60 events later."""
    for i in range(events):
        yield _placement(i, team(i), features(i), ("spot", "on_demand")[i % 2])
        if i >= 60:
            yield _outcome(i - 60)


def _clean(n: int) -> Iterator[dict[str, object]]:
    return _stream(n, lambda i: "abcd"[i % 4], lambda i: None)


def _keys(n: int) -> Iterator[dict[str, object]]:
    return _stream(n, lambda i: "abcd"[i % 4], lambda i: {f"f{i}_{j}": 1.0 for j in range(256)})


def _teams(n: int) -> Iterator[dict[str, object]]:
    return _stream(n, lambda i: f"team-{i}", lambda i: None)


def _big(n: int) -> Iterator[dict[str, object]]:
    """Placements of about 900 KB (256 long feature keys, each with an emoji: Python keeps
    such a string in 4 bytes a character) that never get an outcome."""
    for i in range(n):
        yield _placement(i, features={f"k{j}-{i}-\U0001F600" + "x" * 3500: 1.0
                                      for j in range(256)})


def _classes(n: int) -> Iterator[dict[str, object]]:
    """Placements, each of a job class of about 900 KB never seen before."""
    for event in _stream(n, lambda i: "abcd"[i % 4], lambda i: None):
        if event["event_type"] == "placement":
            job = event["job"]
            assert isinstance(job, dict)
            job["job_class"] = f"class-{event['decision_id']}-" + "x" * 900_000
        yield event


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    what: str
    events: int
    """Events at scale 1 (the figures of the original report)."""
    make: Callable[[int], Iterator[dict[str, object]]] | None
    """None: the huge-line case (written as bytes)."""


CASES: tuple[Case, ...] = (
    Case("clean-40k", "40,000 placements of four teams, the baseline of keys", 40_000, _clean),
    Case("keys", "40,000 placements, each with 256 feature keys never seen before", 40_000,
         _keys),
    Case("clean-100k", "100,000 placements of four teams, the baseline of teams", 100_000,
         _clean),
    Case("teams", "100,000 placements, each of a team never seen before", 100_000, _teams),
    Case("big", "1,000 placements of about 900 KB that never get an outcome", 1000, _big),
    Case("classes", "1,000 placements, each of a new job class of 900 KB", 1000, _classes),
    Case("clean-100", "100 small events, the baseline of the huge line", 100, _clean),
    Case("huge-line", "one 400 MB line among 100 small events", 400, None),
)


def write_case(case: Case, scale: float, path: Path) -> int:
    """Write the case's input at ``scale``; return its size in bytes."""
    n = max(int(case.events * scale), 1)
    with path.open("wb") as out:
        if case.make is None:
            for event in _clean(50):
                out.write(json.dumps(event).encode() + b"\n")
            out.write(b'{"event_type": "placement", "pad": "')
            chunk = b"x" * (1 << 20)
            for _ in range(n):
                out.write(chunk)
            out.write(b'"}\n')
            for event in _clean(50):
                out.write(json.dumps(event).encode() + b"\n")
        else:
            for event in case.make(n):
                out.write(json.dumps(event).encode() + b"\n")
    return path.stat().st_size


@dataclass(frozen=True, slots=True)
class Measured:
    seconds: float
    peak_mib: float
    summary: dict[str, object]


def replay_measured(events: Path, out: Path, config: Path | None = None) -> Measured:
    """``placewatch replay`` in a child process: wall time and peak resident memory."""
    command = [sys.executable, "-m", "streams.cli", "--quiet", "replay", str(events),
               "--out", str(out)]
    if config is not None:
        command += ["--config", str(config)]
    began = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    errors = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - began
    if child.returncode != 0:
        raise RuntimeError(f"replay of {events.name} failed ({child.returncode}): "
                           f"{errors.decode(errors='replace')[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return Measured(seconds, usage.ru_maxrss / 1024, summary)


def memory_budget_mib(join_max_mb: int, reorder_max_mb: int) -> int:
    """What hostile input may add to a clean run's peak memory (docs/configuration.md,
    "Memory"): the two buffers' caps, plus 128 MiB for the batch, the deep audit's hand-off
    and the outcomes it awaits (16 + 8 + 64 MiB, rounded up)."""
    return join_max_mb + reorder_max_mb + 128
