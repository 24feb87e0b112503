"""Idempotency and the placement/outcome join, both with bounded memory.

Time here is *event time*: the caller passes a watermark (the latest event timestamp seen, in
epoch seconds), never the wall clock, so a replay reproduces every decision exactly.

>>> ids = RecentIds(horizon=2)
>>> [ids.seen_or_add(k) for k in ("a", "b", "a", "c", "a")]
[False, False, True, False, False]

``"a"`` was forgotten once two newer ids had arrived: duplicates are detected within the
horizon of the last ``horizon`` distinct ids.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Generic, TypeVar

__all__ = ["OutcomeJoiner", "RecentIds"]

P = TypeVar("P")
Out = TypeVar("Out")


class RecentIds:
    """Remembers the last ``horizon`` distinct keys (FIFO), for duplicate detection."""

    __slots__ = ("_horizon", "_order", "_seen")

    def __init__(self, horizon: int) -> None:
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self._horizon = horizon
        self._seen: set[str] = set()
        self._order: deque[str] = deque()

    def __len__(self) -> int:
        return len(self._seen)

    def seen_or_add(self, key: str) -> bool:
        """True if ``key`` is within the horizon (a duplicate); otherwise remember it."""
        if key in self._seen:
            return True
        self._seen.add(key)
        self._order.append(key)
        if len(self._order) > self._horizon:
            self._seen.discard(self._order.popleft())
        return False


class OutcomeJoiner(Generic[P, Out]):
    """Joins outcomes to their placements by ``decision_id``, in either arrival order.

    * A placement waits for its outcome while it is among the newest ``capacity`` placements,
      the placements waiting add up to at most ``max_bytes`` (each charged its ``size``, the
      caller's measure of it: the event's length), and it is no older than
      ``placement_ttl_s`` behind the watermark; after that it is released and counted in
      :attr:`unmatched_placements` (its job's outcome never came in time).
    * An outcome whose placement has not been seen waits ``orphan_wait_s`` of event time, and
      at most ``capacity`` outcomes (of ``max_bytes`` together) wait; then :meth:`advance`
      returns it as orphaned.

    >>> j: OutcomeJoiner[str, str] = OutcomeJoiner(orphan_wait_s=60, placement_ttl_s=3600,
    ...                                            capacity=10)
    >>> j.add_outcome("d1", "out-1", watermark=0.0) is None      # waits for its placement
    True
    >>> j.add_placement("d1", "place-1", watermark=5.0)          # releases the waiting outcome
    'out-1'
    >>> j.add_outcome("d2", "out-2", watermark=10.0) is None
    True
    >>> j.advance(watermark=100.0)                               # 90 s > 60 s: orphaned
    ['out-2']
    """

    def __init__(self, orphan_wait_s: float, placement_ttl_s: float, capacity: int,
                 max_bytes: int = 1 << 62) -> None:
        if orphan_wait_s < 0:
            raise ValueError(f"orphan_wait_s must be >= 0, got {orphan_wait_s}")
        if placement_ttl_s <= 0:
            raise ValueError(f"placement_ttl_s must be > 0, got {placement_ttl_s}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self._orphan_wait_s = orphan_wait_s
        self._ttl_s = placement_ttl_s
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._placements: OrderedDict[str, tuple[float, P, int]] = OrderedDict()
        self._outcomes: OrderedDict[str, tuple[float, Out, int]] = OrderedDict()
        self._placement_bytes = 0
        self._outcome_bytes = 0
        self.unmatched_placements = 0
        self._overflowed: list[Out] = []

    @property
    def waiting_placements(self) -> int:
        """Placements held for an outcome that has not arrived yet."""
        return len(self._placements)

    @property
    def waiting_outcomes(self) -> int:
        """Outcomes held for a placement that has not arrived yet."""
        return len(self._outcomes)

    @property
    def waiting_bytes(self) -> int:
        """The sizes of everything held, added up."""
        return self._placement_bytes + self._outcome_bytes

    def add_placement(self, decision_id: str, placement: P, watermark: float,
                      size: int = 0) -> Out | None:
        """Hold ``placement`` (of ``size`` bytes); return the outcome that was waiting for it,
        if any."""
        waiting = self._outcomes.pop(decision_id, None)
        if waiting is not None:
            self._outcome_bytes -= waiting[2]
            return waiting[1]
        placements = self._placements
        old = placements.pop(decision_id, None)  # the same id again: the newer one waits
        if old is not None:
            self._placement_bytes -= old[2]
            self.unmatched_placements += 1
        placements[decision_id] = (watermark, placement, size)
        self._placement_bytes += size
        while len(placements) > self._capacity or (
                self._placement_bytes > self._max_bytes and len(placements) > 1):
            _, (_, _, freed) = placements.popitem(last=False)
            self._placement_bytes -= freed
            self.unmatched_placements += 1
        return None

    def add_outcome(self, decision_id: str, outcome: Out, watermark: float,
                    size: int = 0) -> P | None:
        """Return the placement ``outcome`` belongs to, or hold the outcome (of ``size``
        bytes) and return None."""
        held = self._placements.pop(decision_id, None)
        if held is not None:
            self._placement_bytes -= held[2]
            return held[1]
        outcomes = self._outcomes
        old = outcomes.pop(decision_id, None)
        if old is not None:
            self._outcome_bytes -= old[2]
            self._overflowed.append(old[1])
        outcomes[decision_id] = (watermark, outcome, size)
        self._outcome_bytes += size
        while len(outcomes) > self._capacity or (
                self._outcome_bytes > self._max_bytes and len(outcomes) > 1):
            _, (_, oldest, freed) = outcomes.popitem(last=False)
            self._outcome_bytes -= freed
            self._overflowed.append(oldest)
        return None

    def advance(self, watermark: float) -> list[Out]:
        """Release expired placements and return the outcomes that are now orphaned."""
        placements = self._placements
        cutoff = watermark - self._ttl_s
        while placements:
            first = next(iter(placements.values()))
            if first[0] >= cutoff:
                break
            placements.popitem(last=False)
            self._placement_bytes -= first[2]
            self.unmatched_placements += 1
        orphaned, self._overflowed = self._overflowed, []
        outcomes = self._outcomes
        cutoff = watermark - self._orphan_wait_s
        while outcomes:
            held_since, outcome, size = next(iter(outcomes.values()))
            if held_since >= cutoff:
                break
            outcomes.popitem(last=False)
            self._outcome_bytes -= size
            orphaned.append(outcome)
        return orphaned

    def drain_outcomes(self) -> list[Out]:
        """At end of input: every outcome still waiting is orphaned."""
        orphaned = self._overflowed + [outcome for _, outcome, _ in self._outcomes.values()]
        self._outcomes.clear()
        self._outcome_bytes = 0
        self._overflowed = []
        return orphaned
