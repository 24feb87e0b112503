"""Scheduling equity (the seed's "scheduling equity drift"): relative wait gaps among equals.

The seed alerts when the percentage difference in wait time between classes of jobs passes
12%. placewatch reports this figure, with its interval, in ``summary.json``; it does not alert
on it yet. On the simulator's fair baseline the gaps within a class are large and partly
real: teams' budgets bind differently, so different shares of their long-waiting jobs are
rejected instead of placed. And a class whose waits are mostly zero has a mean that rests on
a few long waits. An alert needs a statistic robust to both, such as a rank or quantile
comparison per batch.

Between *priority* classes a difference is the policy itself (high priority is meant to wait
less). So placewatch measures the gap where it should be zero: among the groups of an
audited attribute, *within* each priority class.

Method, for a reviewer:

- For every attribute and priority class, the groups with at least ``min_support``
  placements in that class are compared on mean queue wait.
- A finding is reported when the longest-waiting group's mean is more than ``limit`` (12%)
  above the shortest-waiting group's, with confidence.
- Concretely, the lower end of a normal interval for the log ratio of the two means must lie
  above ``log(1 + limit)``. The interval uses the delta method, and the confidence is
  Bonferroni-corrected for the comparisons of that evaluation.
- Waits are strongly dependent: a busy hour delays all of a group's jobs together. So each
  mean's standard error comes from the spread of its *batch means* (one batch per
  evaluation, at least ``MIN_BATCHES`` of them), the standard remedy for autocorrelated
  series, not from the spread of single waits.

>>> tracker = WaitEquity(limit=0.12, confidence=0.95, min_support=30)
>>> for batch in range(20):
...     for i in range(40):
...         _ = tracker.add("team", "a", priority=1, wait=100.0 + (batch + i) % 7)
...         _ = tracker.add("team", "b", priority=1, wait=150.0 + (batch * i) % 5)
...     tracker.close_batch()
>>> [(f.attribute, f.priority, f.group, f.reference_group, round(f.gap, 2))
...  for f in tracker.evaluate() if f.significant]
[('team', 1, 'b', 'a', 0.47)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from detectors.fairness import z_for_confidence

__all__ = ["WaitEquity", "WaitGap"]

_MAX_CLASSES = 16
MIN_BATCHES = 10
"""Batches a group's wait needs in a class before it is compared."""


@dataclass(frozen=True, slots=True)
class WaitGap:
    """The longest- against the shortest-waiting group of one attribute and priority class."""

    attribute: str
    priority: int
    group: str
    mean_wait_s: float
    reference_group: str
    reference_wait_s: float
    gap: float
    """(longer / shorter) − 1."""
    support: int
    significant: bool


class WaitEquity:
    """Per (attribute, priority class, group): waits in the open batch, and batch-mean sums.

    A cell is ``[n, total, batch_n, batch_total, batches, sum of batch means, sum of their
    squares]``.
    """

    def __init__(self, limit: float, confidence: float, min_support: int) -> None:
        if not limit > 0:
            raise ValueError(f"limit must be > 0, got {limit!r}")
        z_for_confidence(confidence)
        if min_support < 2:
            raise ValueError(f"min_support must be >= 2, got {min_support}")
        self.limit = limit
        self.confidence = confidence
        self.min_support = min_support
        self.cells: dict[tuple[str, int], dict[str, list[float]]] = {}
        self.classes: set[int] = set()
        self.untracked = 0

    def add(self, attribute: str, group: str, priority: int, wait: float) -> None:
        """One placement's wait (the group names come from the bounded ledger)."""
        if priority not in self.classes:
            if len(self.classes) >= _MAX_CLASSES:
                self.untracked += 1
                return
            self.classes.add(priority)
        cell = self.cells.setdefault((attribute, priority), {}).setdefault(
            group, [0, 0.0, 0, 0.0, 0, 0.0, 0.0])
        cell[2] += 1
        cell[3] += wait

    def close_batch(self) -> None:
        """End of a batch: fold every cell's open batch into its batch-mean sums."""
        for groups in self.cells.values():
            for cell in groups.values():
                if cell[2]:
                    mean = cell[3] / cell[2]
                    cell[0] += cell[2]
                    cell[1] += cell[3]
                    cell[4] += 1
                    cell[5] += mean
                    cell[6] += mean * mean
                    cell[2] = 0
                    cell[3] = 0.0

    def evaluate(self) -> list[WaitGap]:
        """Every (attribute, class) comparison; ``significant`` marks the ones to report."""
        rows = []
        for (attribute, priority), groups in sorted(self.cells.items()):
            stats = []
            for name, (n, total, _, _, batches, sums, squares) in sorted(groups.items()):
                if n < self.min_support or total <= 0 or batches < MIN_BATCHES:
                    continue
                mean = total / n
                batch_mean = sums / batches
                spread = max(squares / batches - batch_mean * batch_mean, 0.0)
                variance = spread * batches / (batches - 1) / batches  # of the mean
                stats.append((name, int(n), mean, variance / (mean * mean)))
            if len(stats) >= 2:
                rows.append((attribute, priority, stats))
        if not rows:
            return []
        z = z_for_confidence(1 - (1 - self.confidence) / len(rows))
        out = []
        for attribute, priority, stats in rows:
            low = min(stats, key=lambda s: (s[2], s[0]))
            high = max(stats, key=lambda s: (s[2], s[0]))
            log_ratio = math.log(high[2] / low[2])
            lower = log_ratio - z * math.sqrt(high[3] + low[3])
            out.append(WaitGap(attribute, priority, high[0], high[2], low[0], low[2],
                               high[2] / low[2] - 1, high[1],
                               lower > math.log(1 + self.limit)))
        return out
