"""``scheduling_equity``: a group's jobs wait longer than their equals, past the limit, with
confidence (the seed's *scheduling equity drift*, 12%; :mod:`detectors.wait_equity` says how).

Re-tested at every evaluation over the recent window (``wait_gap_window`` batches). It fires
on the group's class with the strongest evidence (the highest lower bound). It stays open
while any class of the group is a finding or the class it fired on has its point gap past
the limit; it resolves when that class's point gap is at or under the limit and nothing else
is a finding. When the fired class loses support (too few waited jobs or matched batches in
the window) the alert is held, not resolved, so a group hovering at the minimum support does
not flap; after a whole window without support it resolves, saying it closed for lack of
data, not because the gap closed.

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
from detectors.wait_equity import WaitEquity, WaitGap

__all__ = ["SCHEDULING_EQUITY", "SchedulingEquityDetector"]

SCHEDULING_EQUITY: Final = AlertKind("scheduling_equity", "PlacewatchSchedulingEquity",
                                     "warning")
METRIC: Final = "queue_wait_gap"
_SKIP: Final = frozenset({OVERFLOW_GROUP})


class SchedulingEquityDetector(CoreDetector):
    """Every placed job's wait, by attribute, group and class; the window's comparisons."""

    kinds = (SCHEDULING_EQUITY,)

    def __init__(self, config: CoreConfig) -> None:
        super().__init__(config)
        self.tracker = WaitEquity(dict(config.wait_gap_limits), config.wait_gap_limit,
                                  config.confidence, max(config.min_group_support, 2),
                                  config.wait_gap_window)
        self.latest: list[WaitGap] = []
        self.fired: dict[AlertKey, _Held] = {}
        """Per open alert: the class it fired on, and how it stands since."""

    def on_placement(self, event: Placement, groups: list[GroupStats], where: Where,
                     core: CoreView) -> None:
        placed = core.placed_wait  # a preempted job's wait counts from its preemption
        if placed is None:
            return
        priority, wait = placed
        job = event.job
        job_class = job.job_class if isinstance(job, Job) else UNSET  # a placed_wait has a job
        cls = (priority, job_class if isinstance(job_class, str) else "")
        tracker = self.tracker
        if not tracker.admit(cls):
            return
        add = tracker.add
        for stats in groups:
            add(stats.attribute, stats.name, cls, wait)

    def evaluate(self, core: CoreView, where: Where) -> Iterator[Edge]:
        tracker = self.tracker
        tracker.close_batch()
        self.latest = gaps = tracker.evaluate(_SKIP)
        mine: dict[tuple[str, str], list[WaitGap]] = {}
        worst: dict[tuple[str, str], WaitGap] = {}
        for gap in gaps:
            who = (gap.attribute, gap.group)
            mine.setdefault(who, []).append(gap)
            if gap.significant and (who not in worst or gap.lower > worst[who].lower):
                worst[who] = gap
        book = core.alert_book
        for (attribute, group), gap in sorted(worst.items()):
            key: AlertKey = ("scheduling_equity", attribute, group, METRIC)
            if not book.is_open(key):
                self.fired[key] = _Held(gap.job_class, gap.gap)
                yield Fire(key, equity_alert(key, gap, where, tracker,
                                             self.config.evaluate_every))
        window_events = tracker.window * self.config.evaluate_every
        for held in book.open_keys:
            if held[0] != "scheduling_equity":
                continue
            assert held[1] is not None and held[2] is not None
            who = (held[1], held[2])
            state = self.fired.get(held)
            if state is None:  # not fired by this detector's state: hold on any class
                state = self.fired[held] = _Held(None, 0.0)
            if who in worst:
                state.misses = 0
                continue
            watched = [g for g in mine.get(who, ()) if state.job_class in (None, g.job_class)]
            now = next((g for g in watched if g.gap > g.limit), None)
            if now is not None:  # still past the limit, if not with confidence
                state.last_gap, state.misses = now.gap, 0
                continue
            if watched:
                fired = watched[0]
                del self.fired[held]
                yield Resolve(held, fired.gap, equity_resolution(fired))
                continue
            state.misses += 1
            if state.misses >= tracker.window:
                del self.fired[held]
                yield Resolve(held, state.last_gap,
                              unsupported_resolution(held[1], held[2], state, window_events))

    def summary(self) -> dict[str, object]:
        return {"scheduling_equity": wait_gaps(self.tracker, self.latest,
                                               self.config.evaluate_every)}


def class_words(job_class: tuple[int, str]) -> str:
    """``priority 1 batch`` jobs."""
    priority, name = job_class
    return f"priority {priority} {name}".rstrip()


class _Held:
    """An open alert's class (None: any) and its point gap when it last had support."""

    __slots__ = ("job_class", "last_gap", "misses")

    def __init__(self, job_class: tuple[int, str] | None, last_gap: float) -> None:
        self.job_class = job_class
        self.last_gap = last_gap
        self.misses = 0
        """Evaluations in a row in which the class had no support."""


def equity_alert(key: AlertKey, g: WaitGap, where: Where, tracker: WaitEquity,
                 evaluate_every: int) -> Alert:
    """``scheduling_equity``: the group's jobs wait longer than their class-mates', past the
    limit, with confidence."""
    window = tracker.window
    cls = class_words(g.job_class)
    return SCHEDULING_EQUITY.firing(
        key, where, value=round(g.gap, 6), reference=g.limit,
        summary=(f"{g.attribute}={g.group}'s {cls} jobs wait {g.gap:.0%} longer than the "
                 f"other groups' {cls} jobs placed at the same time, over the last "
                 f"{window * evaluate_every:,} events. With {tracker.confidence:.0%} "
                 f"confidence the gap is at least {g.lower:.0%}, past the {g.limit:.0%} limit. "
                 f"Evidence: {g.batches} batches in which both it and the rest placed such "
                 f"jobs; in them, {g.placed:,} of its placements ({g.waited:,} waited; mean "
                 f"wait {duration(g.mean_wait_s)}) against {g.rest_waited:,} waited jobs of "
                 f"the rest (mean {duration(g.rest_wait_s)}). The gap compares jobs batch by "
                 f"batch, so it can differ from the ratio of the two means."),
        details={"priority": g.job_class[0], "job_class": g.job_class[1],
                 "mean_wait_s": round(g.mean_wait_s, 3),
                 "rest_mean_wait_s": round(g.rest_wait_s, 3),
                 "gap_lower_bound": round(g.lower, 6), "placed": g.placed, "waited": g.waited,
                 "rest_waited": g.rest_waited, "batches": g.batches,
                 "window_batches": window, "confidence": tracker.confidence})


def equity_resolution(g: WaitGap) -> str:
    """Why a ``scheduling_equity`` alert resolved: its class is back at or under the limit."""
    return (f"{g.attribute}={g.group}'s {class_words(g.job_class)} jobs now wait "
            f"{max(g.gap, 0.0):.0%} longer than the other groups' placed at the same time "
            f"(mean {duration(g.mean_wait_s)} against {duration(g.rest_wait_s)}), at or under "
            f"the {g.limit:.0%} limit, and no other class of it is past the limit with "
            f"confidence.")


def unsupported_resolution(attribute: str, group: str, state: _Held,
                           window_events: int) -> str:
    """Why a ``scheduling_equity`` alert resolved for lack of data."""
    what = "its" if state.job_class is None else f"its {class_words(state.job_class)}"
    return (f"{attribute}={group}: closed for lack of data, not because the gap closed: over "
            f"the last {window_events:,} events too few of {what} jobs, or of the rest's, "
            f"waited (or they were not placed in the same batches) to compare them; the gap "
            f"was {state.last_gap:.0%} when it was last measured.")
