"""The simulator's jobs and how its decisions and outcomes are written as v1 events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from simulator import world

__all__ = ["START", "Job", "outcome_event", "placement_event", "timestamp"]

START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
"""Simulated time 0."""
_START_EPOCH = START.timestamp()


def timestamp(t: float) -> str:
    """RFC 3339 (UTC, milliseconds) of simulated second ``t``."""
    moment = dt.datetime.fromtimestamp(_START_EPOCH + t, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Job:
    """One submitted job and what the scheduler has done with it so far."""

    __slots__ = ("attempts", "cls", "cpu", "deadline", "gpu", "job_id", "priority", "queued",
                 "runtime", "submitted", "team")

    def __init__(self, job_id: str, team: world.Team, cls: world.JobClass, priority: int,
                 cpu: int, gpu: int, submitted: float, runtime: float, deadline: float) -> None:
        self.job_id = job_id
        self.team = team
        self.cls = cls
        self.priority = priority
        self.cpu = cpu
        self.gpu = gpu
        self.submitted = submitted
        self.runtime = runtime
        self.deadline = deadline
        self.attempts = 0
        self.queued = False


def placement_event(decision_id: str, job: Job, now: float, decision: dict[str, Any],
                    market: float, queue_depth: int, cheap_free_cpu: int,
                    override: dict[str, str] | None) -> dict[str, Any]:
    """A ``placement`` event, with the features the scheduler saw."""
    team = job.team
    event: dict[str, Any] = {
        "event_type": "placement",
        "schema_version": 1,
        "decision_id": decision_id,
        "job_id": job.job_id,
        "decided_at": timestamp(now),
        "submitted_at": timestamp(job.submitted),
        "scheduler": {"name": "costsched", "version": "2.3.1", "policy": "spot-first"},
        "attributes": {"team": team.name, "department": team.department,
                       "region": team.region, "tenant_tier": team.tenant_tier},
        "job": {
            "job_class": job.cls.name,
            "priority": job.priority,
            "requested": {"cpu": job.cpu, "memory_gb": job.cpu * 4, "gpu": job.gpu},
            "deadline": timestamp(job.deadline),
            "budget_code": team.budget_code,
        },
        "decision": decision,
        "features": {
            "spot_price": round(world.TIERS["spot"].cpu_hour * market, 6),
            "on_demand_price": world.TIERS["on_demand"].cpu_hour,
            "interruption_prob": round(min(0.5, 0.05 * market), 4),
            "queue_depth": float(queue_depth),
            "cheap_free_cpu": float(cheap_free_cpu),
        },
    }
    if override is not None:
        event["override"] = override
    return event


def outcome_event(decision_id: str, job: Job, now: float, started: float, status: str,
                  deadline_met: bool | None, cost: float | None) -> dict[str, Any]:
    """An ``outcome`` event."""
    event: dict[str, Any] = {
        "event_type": "outcome",
        "schema_version": 1,
        "decision_id": decision_id,
        "job_id": job.job_id,
        "finished_at": timestamp(now),
        "started_at": timestamp(started),
        "status": status,
        "actual_runtime_s": round(now - started, 1),
    }
    if cost is not None:
        event["actual_cost"] = round(cost, 6)
    if deadline_met is not None:
        event["deadline_met"] = deadline_met
    return event
