"""Scenarios: what changes in the scheduler's behaviour, for whom, and from when.

Each scenario but ``baseline`` switches on at ``change_fraction`` of the requested events (40%;
``standing_disparity`` from the first event; the exact event index is written to the ground
truth) and affects one team.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["SCENARIOS", "Scenario"]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    metric: str | None = None
    """The metric the change moves (as named in alerts)."""
    expected_kinds: tuple[str, ...] = ()
    """Alert kinds a correct detector raises for it."""
    target_team: str = "genomics"
    change_fraction: float = 0.4
    deny_cheap: float = 0.0
    """Probability that a cheap placement is withheld from the target team (fixed shift)."""
    runtime_forecast_factor: float = 1.0
    """The target team's runtimes are under-forecast by this factor."""
    feedback_gain: float = 0.0
    """Strength of the history-aware demotion loop (0 = no loop)."""
    preemption_focus: float = 0.0
    """Probability that a spot eviction picks the target team's job when it has one running."""
    leak_override: bool = False
    wait_factor: float = 1.0
    """The target team's queued jobs wait this many times as long (jobs placed at once, with no
    wait, are unaffected)."""
    ramp_events: int = 0
    """When > 0, ``deny_cheap`` grows linearly from nothing at the change point to its full
    value this many events later, and stays there (a slow drift, not a step)."""


SCENARIOS: Final = {
    s.name: s
    for s in (
        Scenario("baseline", "Fair and stationary: a group-blind policy, no change."),
        Scenario(
            "equity_drift",
            "From the change point the scheduler withholds cheap tiers from the target team "
            "on 42% of its jobs, sending them to on-demand (about -20 points of preferred share).",
            metric="preferred_rate", expected_kinds=("equity_drift", "disparity"),
            deny_cheap=0.42,
        ),
        Scenario(
            "forecast_bias",
            "From the change point the target team's runtimes are under-forecast by x1.5.",
            metric="runtime_residual", expected_kinds=("forecast_drift",),
            runtime_forecast_factor=1.5,
        ),
        Scenario(
            "feedback_loop",
            "From the change point the scheduler demotes teams whose recent waits were long; a "
            "small initial delay for the target team then compounds (delay -> lower priority -> "
            "more delay, fewer cheap placements).",
            metric="preferred_rate", expected_kinds=("amplification", "equity_drift"),
            feedback_gain=1.0,
        ),
        Scenario(
            "step_change",
            "From the change point the target team loses cheap placements once (-15 points); "
            "the gap then stays flat: a step, not a loop.",
            metric="preferred_rate", expected_kinds=("equity_drift",),
            deny_cheap=0.30,
        ),
        Scenario(
            "preemption_concentration",
            "From the change point spot evictions pick the target team's jobs 70% of the time "
            "when it has any running.",
            metric="preemption_rate", expected_kinds=("equity_drift", "disparity"),
            preemption_focus=0.7,
        ),
        Scenario(
            "standing_disparity",
            "From the first event the scheduler withholds cheap tiers from the target team on "
            "42% of its jobs: a standing shortfall with no change point to drift from, found "
            "by the four-fifths check (disparity), not by equity drift.",
            metric="preferred_rate_parity_ratio", expected_kinds=("disparity",),
            change_fraction=0.0, deny_cheap=0.42,
        ),
        Scenario(
            "wait_drift",
            "From the change point the target team's queued jobs wait x1.5 as long as they "
            "would have (the capacity they were given is held idle meanwhile); its tiers, and "
            "whether its jobs queue at all, are unchanged.",
            metric="queue_wait", expected_kinds=("wait_drift", "scheduling_equity"),
            wait_factor=1.5,
        ),
        Scenario(
            "slow_drift",
            "From the change point the share of the target team's jobs refused cheap tiers "
            "grows steadily, from none to 42% 60,000 events later (then stays): a slow, "
            "steady slide of its cheap-tier share, with no step to find.",
            metric="preferred_rate", expected_kinds=("equity_drift",),
            deny_cheap=0.42, ramp_events=60_000,
        ),
        Scenario(
            "override_leak",
            "From the change point an on-call override pins the target team to reserved "
            "capacity; it expires after 6 h but is never removed.",
            metric="override_past_limit_seconds", expected_kinds=("override_expired",),
            leak_override=True,
        ),
    )
}
