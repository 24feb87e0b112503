"""The simulated organisation: teams, job classes, tiers, prices and capacity.

Every team draws jobs from the same class mix and the scheduler's baseline policy never looks
at the team, so ``baseline`` is fair by construction: groups differ only in traffic volume and
noise. Figures are loosely modelled on a mid-size cloud tenant (per-vCPU and per-GPU hourly
prices in USD, spot about 30% of on-demand, reserved about 60%).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["CLASSES", "REGIONS", "TEAMS", "TIERS", "JobClass", "Team", "Tier"]


@dataclass(frozen=True, slots=True)
class Team:
    name: str
    department: str
    region: str
    tenant_tier: str
    share: float
    """Fraction of submitted jobs."""
    budget: float
    """USD of on-demand spend (a rolling 6-hour average, see the engine) above which the team's
    low-priority work is rejected."""
    budget_code: str


@dataclass(frozen=True, slots=True)
class JobClass:
    name: str
    share: float
    median_runtime_s: float
    runtime_sigma: float
    """Log-normal spread of the true runtime."""
    cpus: tuple[int, ...]
    gpus: tuple[int, ...]
    priorities: tuple[int, ...]
    interruptible: bool
    """Whether the scheduler may put it on spot."""
    slack: tuple[float, float]
    """Deadline = submit + runtime × U(slack) + 10 min."""


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    cpu_hour: float
    gpu_hour: float
    generations: tuple[int, ...]


TEAMS: Final = (
    Team("search", "product", "us-east", "paid", 0.16, 820.0, "PROD-201"),
    Team("ads", "product", "us-east", "paid", 0.14, 730.0, "PROD-305"),
    Team("recsys", "product", "eu-west", "paid", 0.12, 640.0, "PROD-412"),
    Team("genomics", "research", "eu-west", "free", 0.10, 460.0, "RSCH-114"),
    Team("vision", "research", "us-east", "free", 0.10, 550.0, "RSCH-120"),
    Team("speech", "research", "ap-south", "free", 0.08, 410.0, "RSCH-131"),
    Team("finance", "corporate", "eu-west", "paid", 0.08, 360.0, "CORP-007"),
    Team("infra", "platform", "us-east", "paid", 0.08, 410.0, "PLAT-001"),
    Team("climate-lab", "research", "ap-south", "free", 0.07, 320.0, "RSCH-142"),
    Team("support-bots", "product", "ap-south", "paid", 0.07, 320.0, "PROD-518"),
)

CLASSES: Final = (
    JobClass("batch", 0.45, 1800.0, 0.8, (2, 4, 8, 16), (0,), (0, 1), True, (3.0, 8.0)),
    JobClass("training", 0.25, 5400.0, 0.7, (8, 16, 32), (1, 2, 4), (1, 2), True, (2.0, 5.0)),
    JobClass("inference", 0.15, 600.0, 0.6, (2, 4, 8), (0, 1), (2,), True, (1.5, 3.0)),
    JobClass("interactive", 0.15, 300.0, 0.5, (1, 2, 4), (0,), (3,), False, (1.2, 2.0)),
)

TIERS: Final = {
    "spot": Tier("spot", 0.0144, 0.90, (4, 5, 6, 7)),
    "reserved": Tier("reserved", 0.0300, 1.60, (5, 6)),
    "on_demand": Tier("on_demand", 0.0480, 2.50, (7,)),
}

REGIONS: Final = {"us-east": "us-east-1", "eu-west": "eu-west-1", "ap-south": "ap-south-1"}

RESERVED_CPUS: Final = 700
SPOT_CPUS: Final = 1000
MEAN_INTERARRIVAL_S: Final = 11.0
"""Offered load ≈ 2× the cheap capacity in vCPU-seconds; about two thirds of placements (by
count) get cheap compute, big training jobs least often."""
SPOT_RECLAIM_MEAN_S: Final = 240.0
"""Mean time between spot capacity reclaims (each evicts one running spot job)."""
OVERRIDE_RATE: Final = 0.003
DUPLICATE_RATE: Final = 0.002
"""Share of events the scheduler's at-least-once delivery sends twice."""
OUTCOME_LAG_S: Final = (5.0, 600.0)
"""Outcome reports arrive this long (uniform) after the job finished."""
