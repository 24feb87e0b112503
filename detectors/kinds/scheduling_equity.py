"""Scheduling equity: the within-class wait gap among an attribute's groups
(:mod:`detectors.wait_equity`), reported in ``summary.json`` as ``scheduling_equity``.

It raises no alert (:mod:`detectors.wait_equity` says why and what an alert would need); it
is a detector so that it is fed and batched like the others.
"""

from __future__ import annotations

from collections.abc import Iterator

from detectors.alerts import Where
from detectors.config import CoreConfig
from detectors.detector import CoreDetector, CoreView, Edge
from detectors.events import Placement
from detectors.groups import GroupStats
from detectors.summary import wait_gaps
from detectors.wait_equity import WaitEquity

__all__ = ["SchedulingEquityDetector"]


class SchedulingEquityDetector(CoreDetector):
    """Every placed job's queue wait, by attribute, group and priority class."""

    def __init__(self, config: CoreConfig) -> None:
        super().__init__(config)
        self.tracker = WaitEquity(config.wait_gap_limit, config.confidence,
                                  max(config.min_group_support, 2))

    def on_placement(self, event: Placement, groups: list[GroupStats], where: Where,
                     core: CoreView) -> None:
        placed = event.placed_wait
        if placed is None:
            return
        priority, wait = placed
        add = self.tracker.add
        for stats in groups:
            add(stats.attribute, stats.name, priority, wait)

    def evaluate(self, core: CoreView, where: Where) -> Iterator[Edge]:
        self.tracker.close_batch()
        return iter(())

    def summary(self) -> dict[str, object]:
        return {"scheduling_equity": wait_gaps(self.tracker)}
