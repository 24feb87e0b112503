"""``wait_drift``: a group's queued jobs falling behind the other groups' jobs of their class,
the same priority on the same tier (:mod:`detectors.wait_drift`, which says how).

This module feeds the watch every placed job that waited, steps it per batch and words its
alerts. The alert's value is the group's median wait in the class since the change, its
reference the median before it (seconds); the other groups' figures are in the words and
``details``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Final

from detectors.alerts import Alert, AlertKey, AlertKind, Where
from detectors.config import CoreConfig
from detectors.detector import CoreDetector, CoreView, Edge, Fire, Resolve, Statistic
from detectors.events import Placement
from detectors.findings import duration
from detectors.groups import EquityLedger, GroupStats
from detectors.wait_drift import WaitDrift, WaitSignal

__all__ = ["WAIT_DRIFT", "WaitDriftDetector"]

WAIT_DRIFT: Final = AlertKind("wait_drift", "PlacewatchQueueWaitDrift", "warning")
METRIC: Final = "queue_wait"


class WaitDriftDetector(CoreDetector):
    """One one-sided watch per (attribute, group) over its queued jobs' waits, each in the
    family budget."""

    kinds = (WAIT_DRIFT,)

    def __init__(self, config: CoreConfig) -> None:
        super().__init__(config)
        self.drift = WaitDrift(config.wait_drift_warmup, config.drift_min_batches,
                               config.wait_drift_shift)

    @property
    def watches(self) -> int:
        return self.drift.armed

    def on_placement(self, event: Placement, groups: list[GroupStats], where: Where,
                     core: CoreView) -> None:
        placed = core.placed_wait  # a preempted job's wait counts from its preemption
        if placed is None or not placed[1] > 0:
            return
        priority, wait = placed
        add = self.drift.add
        tier = event.decision.tier
        job_class = (priority, tier if isinstance(tier, str) else "")
        for stats in groups:
            add(stats.attribute, stats.name, job_class, wait)

    def evaluate(self, core: CoreView, where: Where) -> Iterator[Edge]:
        for signal in self.drift.refresh(core.family_threshold):
            key: AlertKey = ("wait_drift", signal.attribute, signal.group, METRIC)
            if signal.kind == "recovered":
                # its median wait since the alert (or before it, if none was placed there since)
                since = signal.since[0] if math.isfinite(signal.since[0]) else signal.before[0]
                yield Resolve(key, _finite(since), wait_resolution(signal))
            elif not core.alert_book.is_open(key):
                yield Fire(key, wait_alert(key, signal, where,
                                           self.config.false_alarms_per_million))

    def still_alarmed(self, key: AlertKey, ledger: EquityLedger) -> bool:
        watch = self.drift.watches.get((key[1] or "", key[2] or ""))
        return watch is not None and watch.cycle.alarmed

    def statistics(self, ledger: EquityLedger) -> Iterator[Statistic]:
        for (attribute, group), watch in sorted(self.drift.watches.items()):
            if watch.reference is None or not (watch.dispersion.ready or watch.cycle.alarmed):
                continue
            yield Statistic("wait_drift", attribute, group, METRIC,
                            "recovery" if watch.cycle.alarmed else "alarm",
                            watch.cycle.statistic)

    def summary(self) -> dict[str, object]:
        return {"wait_drift": {"watches": len(self.drift.watches),
                               "untracked_waits": self.drift.untracked}}


def _finite(x: float) -> float:
    return round(x, 3) if math.isfinite(x) else 0.0


def _rounded(x: float) -> float | None:
    return round(x, 4) if math.isfinite(x) else None


def _class_words(job_class: tuple[int, str]) -> str:
    priority, tier = job_class
    return f"priority {priority} on {tier}" if tier else f"priority {priority}"


def _share(x: float) -> str:
    return f"{x:.0%}" if math.isfinite(x) else "an unknown share"


def _pair(q: tuple[float, float]) -> str:
    if not all(math.isfinite(x) for x in q):
        return "unknown"
    return f"{duration(q[0])}/{duration(q[1])}"


def wait_alert(key: AlertKey, s: WaitSignal, where: Where, budget: float) -> Alert:
    """``wait_drift``: the group's queued jobs fell behind the other groups of their class."""
    return WAIT_DRIFT.firing(
        key, where, value=_finite(s.since[0]), reference=_finite(s.before[0]),
        summary=(f"{s.attribute}={s.group} fell behind the other groups of "
                 f"{_class_words(s.job_class)}: its queued jobs now wait longer than theirs "
                 f"{_share(s.score)} of the time, against {_share(s.reference_score)} before "
                 f"(each group weighted alike). Its wait p50/p90 there went from "
                 f"{_pair(s.before)} to {_pair(s.since)}, against {_pair(s.rest)} for the other "
                 f"groups over the same time. Evidence: its last {s.support} queued jobs."),
        details={"priority": s.job_class[0], "tier": s.job_class[1], "support": s.support,
                 "wait_p50_before_s": _finite(s.before[0]),
                 "wait_p90_before_s": _finite(s.before[1]),
                 "wait_p50_s": _finite(s.since[0]), "wait_p90_s": _finite(s.since[1]),
                 "rest_wait_p50_s": _finite(s.rest[0]), "rest_wait_p90_s": _finite(s.rest[1]),
                 "longer_than_rest": _rounded(s.score),
                 "longer_than_rest_before": _rounded(s.reference_score),
                 "cusum_threshold": round(s.threshold, 4),
                 "false_alarms_per_million_budget": budget})


def wait_resolution(s: WaitSignal) -> str:
    """Why a ``wait_drift`` alert resolved: its mirror test saw the group's standing again."""
    return (f"{s.attribute}={s.group}: its queued jobs rank against the other groups' as they "
            f"did before the change again (longer {_share(s.score)} of the time in the latest "
            f"batch, {_share(s.reference_score)} before); in "
            f"{_class_words(s.job_class)} its wait p50/p90 since the alert is "
            f"{_pair(s.since)}, against {_pair(s.rest)} for the other groups.")
