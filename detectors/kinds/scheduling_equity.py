"""``scheduling_equity``: a group's jobs wait longer than their equals, past the limit, with
confidence (the seed's *scheduling equity drift*, 12%; :mod:`detectors.wait_equity` says how).

Re-tested at every evaluation over the recent window (``wait_gap_window`` batches). It fires
on the group's class with the strongest evidence (the highest lower bound) and resolves when
the group's point gap is at or under the limit in every class it has support in, or when it
has support in none (no longer enough waited jobs in the window to say).

Its value is the gap (0.30: its jobs wait 30% longer than the rest of their class), its
reference the limit. It is a level test gated by its interval, like ``disparity``, not a
sequential one: it is outside the CUSUM family budget, and the baseline benchmark counts its
false alarms.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from msgspec import UNSET

from detectors.alerts import Alert, AlertKey, AlertKind, Where
from detectors.config import CoreConfig
from detectors.detector import CoreDetector, CoreView, Edge, Fire, Resolve
from detectors.events import Job, Placement
from detectors.findings import duration
from detectors.groups import OVERFLOW_GROUP, GroupStats
from detectors.summary import wait_gaps
from detectors.wait_equity import RequeueClock, WaitEquity, WaitGap

__all__ = ["SCHEDULING_EQUITY", "SchedulingEquityDetector"]

SCHEDULING_EQUITY: Final = AlertKind("scheduling_equity", "PlacewatchSchedulingEquity",
                                     "warning")
METRIC: Final = "queue_wait_gap"
REQUEUE_CAPACITY: Final = 50_000
"""Preempted jobs remembered until they are placed again (about 10 MB at most)."""
_SKIP: Final = frozenset({OVERFLOW_GROUP})


class SchedulingEquityDetector(CoreDetector):
    """Every placed job's wait, by attribute, group and class; the window's comparisons."""

    kinds = (SCHEDULING_EQUITY,)

    def __init__(self, config: CoreConfig) -> None:
        super().__init__(config)
        self.tracker = WaitEquity(dict(config.wait_gap_limits), config.wait_gap_limit,
                                  config.confidence, max(config.min_group_support, 2),
                                  config.wait_gap_window)
        self.requeue = RequeueClock(REQUEUE_CAPACITY)
        self.latest: list[WaitGap] = []

    def on_placement(self, event: Placement, groups: list[GroupStats], where: Where,
                     core: CoreView) -> None:
        action = event.decision.action
        if action == "preempt":
            self.requeue.preempted(event.job_id, event.decided_at.timestamp())
            return
        if action != "place":
            return
        placed = event.placed_wait
        if placed is None:
            return
        priority, wait = placed
        since = self.requeue.placed(event.job_id) if self.requeue.at else None
        if since is not None:
            wait = max(event.decided_at.timestamp() - since, 0.0)
        job = event.job
        job_class = job.job_class if isinstance(job, Job) else UNSET  # placed_wait: it is
        cls = (priority, job_class if isinstance(job_class, str) else "")
        add = self.tracker.add
        for stats in groups:
            add(stats.attribute, stats.name, cls, wait)

    def evaluate(self, core: CoreView, where: Where) -> Iterator[Edge]:
        tracker = self.tracker
        tracker.close_batch()
        self.latest = gaps = tracker.evaluate(_SKIP)
        worst: dict[tuple[str, str], WaitGap] = {}
        over: set[tuple[str, str]] = set()
        for gap in gaps:
            who = (gap.attribute, gap.group)
            if gap.gap > gap.limit:
                over.add(who)
            if gap.significant and (who not in worst or gap.lower > worst[who].lower):
                worst[who] = gap
        book = core.alert_book
        for (attribute, group), gap in sorted(worst.items()):
            key: AlertKey = ("scheduling_equity", attribute, group, METRIC)
            if not book.is_open(key):
                yield Fire(key, equity_alert(key, gap, where, tracker,
                                             self.config.evaluate_every))
        for held in book.open_keys:
            if held[0] != "scheduling_equity":
                continue
            assert held[1] is not None and held[2] is not None
            if (held[1], held[2]) not in over:
                mine = [g for g in gaps if (g.attribute, g.group) == (held[1], held[2])]
                yield Resolve(held, max((g.gap for g in mine), default=0.0),
                              equity_resolution(held[1], held[2], mine,
                                                tracker.limit_of(held[1])))

    def summary(self) -> dict[str, object]:
        return {"scheduling_equity": wait_gaps(self.tracker, self.latest,
                                               self.config.evaluate_every,
                                               self.requeue.forgotten)}


def class_words(job_class: tuple[int, str]) -> str:
    """``priority 1 batch`` jobs."""
    priority, name = job_class
    return f"priority {priority} {name}".rstrip()


def equity_alert(key: AlertKey, g: WaitGap, where: Where, tracker: WaitEquity,
                 evaluate_every: int) -> Alert:
    """``scheduling_equity``: the group's jobs wait longer than their class-mates', past the
    limit, with confidence."""
    window = tracker.window
    return SCHEDULING_EQUITY.firing(
        key, where, value=round(g.gap, 6), reference=g.limit,
        summary=(f"{g.attribute}={g.group}'s {class_words(g.job_class)} jobs wait "
                 f"{g.gap:.0%} longer than the other groups' {class_words(g.job_class)} "
                 f"jobs placed at the same time (mean {duration(g.mean_wait_s)} against "
                 f"{duration(g.rest_wait_s)} over the last {window * evaluate_every:,} "
                 f"events). With "
                 f"{tracker.confidence:.0%} confidence the gap is at least {g.lower:.0%}, past "
                 f"the {g.limit:.0%} limit. Evidence: {g.placed:,} of its placements in that "
                 f"class, {g.waited:,} of which waited, against {g.rest_waited:,} waited jobs "
                 f"of the rest, over {g.batches} batches."),
        details={"priority": g.job_class[0], "job_class": g.job_class[1],
                 "mean_wait_s": round(g.mean_wait_s, 3),
                 "rest_mean_wait_s": round(g.rest_wait_s, 3),
                 "gap_lower_bound": round(g.lower, 6), "placed": g.placed, "waited": g.waited,
                 "rest_waited": g.rest_waited, "batches": g.batches,
                 "window_batches": window, "confidence": tracker.confidence})


def equity_resolution(attribute: str, group: str, gaps: list[WaitGap], limit: float) -> str:
    """Why a ``scheduling_equity`` alert resolved."""
    if not gaps:
        return (f"{attribute}={group}: too few of its jobs waited in the window to compare "
                f"them with their class any more (the limit is {limit:.0%}).")
    worst = max(gaps, key=lambda g: g.gap)
    return (f"{attribute}={group}'s jobs wait at most {max(worst.gap, 0.0):.0%} longer than "
            f"their class-mates' in every class it has support in (the worst, "
            f"{class_words(worst.job_class)}: mean {duration(worst.mean_wait_s)} against "
            f"{duration(worst.rest_wait_s)}), at or under the {limit:.0%} limit.")
