"""One processing order for the events, whatever the partitioning: event time, with bounded
lateness.

Fairness compares groups over time, so the core must see events in an order that does not
depend on how a Kafka topic is partitioned or how the partitions' messages interleave on
arrival. :class:`EventTimeSequencer` gives every event a *key* and releases events in key
order once no event still to come on any partition can have a smaller key:

- a placement's key is its ``decided_at``;
- an outcome's key is its ``finished_at`` plus ``outcome_settle_s``: outcomes are applied that
  long (in event time) after the job ended, so outcomes reported up to that late land in the
  same place in every run;
- equal keys are ordered by the event's content (a ``preempt`` decision before the other
  placements, so a job evicted and placed again in the same instant is seen evicted first;
  placement before outcome; then ``decision_id``, then the bytes), never by arrival.

Each partition's *watermark* is the latest event time seen on it; its *floor* is the
watermark minus ``lateness_s``. An event whose key is below its partition's floor when it
arrives is *late*: it takes the floor as its key (it is processed where it arrived), and is
counted in :attr:`late`; so is an event whose clock is off (far ahead of its partition, until
a second event confirms the jump; a partition's first event is trusted once the second agrees
with it). Undecodable events have no time and take the floor. An event is
released once its key is below every active partition's floor; at the end of input
(:meth:`flush`) everything is.

When no event is late, the order is a function of the events alone: one partition (a file),
four or eight give the same order, hence the same figures. A partition the shell reports as
*quiet* (caught up with its log and silent for a while) does not hold the others back; should
it speak again below the floor, those events are late. Beyond ``capacity`` buffered events,
or ``max_bytes`` of them (each charged :func:`~detectors.events.held_bytes` plus its bytes),
the oldest is released early (counted in :attr:`forced`), which bounds memory at the price of
exactness; a forced release does not make the events after it late.

>>> from detectors.events import decode_event
>>> s = EventTimeSequencer(lateness_s=0.0, outcome_settle_s=60.0, capacity=100)
>>> def event(i, t):
...     raw = (b'{"event_type": "placement", "schema_version": 1, "decision_id": "d-%d",'
...            b' "job_id": "j", "decided_at": "2026-11-02T08:00:%02dZ", "attributes": {},'
...            b' "decision": {"action": "queue"}}' % (i, t))
...     return decode_event(raw), raw
>>> s.offer(*event(1, 5), partition=0)
>>> s.offer(*event(2, 3), partition=1)
>>> s.offer(*event(3, 9), partition=1)
>>> [e.decision_id for _, e, _ in s.ready()]    # partition 0 has one event: not yet trusted
[]
>>> s.offer(*event(4, 7), partition=0)
>>> [e.decision_id for _, e, _ in s.ready()]    # floors at 07 s and 09 s: before 07 s is final
['d-2', 'd-1']
>>> [e.decision_id for _, e, _ in s.flush()]
['d-4', 'd-3']
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator
from typing import Final

from detectors.events import Outcome, Placement, Rejection, held_bytes

__all__ = ["EventTimeSequencer", "Released"]

Released = tuple[int, Placement | Outcome | Rejection, bytes]
"""``(arrival tag, event, raw bytes)``: the tag counts offers from 0 (the input position)."""


def _held(event: Placement | Outcome | Rejection, raw: bytes) -> int:
    return held_bytes(event, raw) + len(raw)  # the decoded event, and its bytes kept with it


_RANK_PREEMPT: Final = -1
_RANK_PLACEMENT: Final = 0
_RANK_OUTCOME: Final = 1
_RANK_REJECTED: Final = 2
_RANK_CLOCK_OFF: Final = 3
"""A partition's first or second event whose clock disagrees: after the good one it is
compared with, so the core's own watermark never starts from a bad clock."""
_NEVER: Final = -math.inf


class _Partition:
    __slots__ = ("first_key", "first_tag", "jump", "watermark")

    def __init__(self) -> None:
        self.watermark = _NEVER
        self.jump: float | None = None
        """A time far ahead of the watermark (or the partition's first), waiting for a second
        event to confirm it."""
        self.first_tag = -1
        self.first_key = _NEVER


class EventTimeSequencer:
    """Buffers events and releases them in event-time order (see the module docstring)."""

    def __init__(self, lateness_s: float, outcome_settle_s: float, capacity: int,
                 max_clock_jump_s: float = math.inf, max_bytes: int = 1 << 62) -> None:
        if not lateness_s >= 0 or math.isinf(lateness_s):
            raise ValueError(f"lateness_s: must be finite seconds >= 0, got {lateness_s!r}")
        if not outcome_settle_s >= 0 or math.isinf(outcome_settle_s):
            raise ValueError(f"outcome_settle_s: must be finite seconds >= 0, got "
                             f"{outcome_settle_s!r}")
        if capacity < 1:
            raise ValueError(f"capacity: must be >= 1, got {capacity!r}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes: must be >= 1, got {max_bytes!r}")
        self.lateness_s = lateness_s
        self.outcome_settle_s = outcome_settle_s
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._bytes = 0
        """What the buffered events take (:func:`~detectors.events.held_bytes`, and their
        bytes again), added up."""
        self.max_clock_jump_s = max_clock_jump_s
        self._heap: list[tuple[float, int, str, bytes, int, Placement | Outcome | Rejection]] = []
        self._partitions: dict[int, _Partition] = {}
        self._quiet: frozenset[int] = frozenset()
        self._assigned: frozenset[int] | None = None
        """The partitions that hold the others back (None: every partition seen, a file)."""
        self._tags: list[int] = []
        """Arrival tags of the buffered events, as a heap (the oldest first)."""
        self._gone: set[int] = set()
        """Tags released while not the oldest (removed from the heap lazily)."""
        self._released_key = _NEVER
        self._max_mark = _NEVER
        """The latest trusted event time on any partition: released keys never count beyond
        it (an untrusted key released because every partition was quiet must not make what
        follows late)."""
        self.offered = 0
        self.late = 0
        """Events that arrived below their partition's floor (processed where they arrived)."""
        self.forced = 0
        """Events released early because the buffer was full."""

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def held_bytes(self) -> int:
        """What the buffered events take, as charged against ``max_bytes``."""
        return self._bytes

    @property
    def oldest_tag(self) -> int:
        """The arrival tag of the oldest event still buffered (every earlier one has been
        released); the next tag when nothing is buffered."""
        return self._tags[0] if self._tags else self.offered

    def assign(self, partitions: Iterable[int]) -> None:
        """The partitions events may come from (a consumer's assignment): each holds the
        others back until it has spoken, or is reported quiet. Events still arriving from a
        partition no longer assigned (read before it was revoked) are put in order but hold
        nothing back."""
        keep = frozenset(partitions)
        for p in keep:
            self._partitions.setdefault(p, _Partition())
        for p in set(self._partitions) - keep:
            del self._partitions[p]
        self._assigned = keep

    def quiet(self, partitions: Iterable[int]) -> None:
        """Partitions caught up with their log and silent: they do not hold the others back."""
        self._quiet = frozenset(partitions)

    def _floor(self, part: _Partition) -> float:
        return part.watermark - self.lateness_s

    def offer(self, event: Placement | Outcome | Rejection, raw: bytes,
              partition: int = 0) -> None:
        """Take one event (decoded, with its bytes) from ``partition``."""
        tag = self.offered
        self.offered = tag + 1
        part = self._partitions.get(partition)
        if part is None:
            part = self._partitions[partition] = _Partition()
        floor = max(self._floor(part), self._released_key)
        if isinstance(event, Placement):
            at = event.decided_at.timestamp()
            rank = _RANK_PREEMPT if event.decision.action == "preempt" else _RANK_PLACEMENT
            key, name = at, event.decision_id
        elif isinstance(event, Outcome):
            at = event.finished_at.timestamp()
            key, rank, name = at + self.outcome_settle_s, _RANK_OUTCOME, event.decision_id
        else:
            at, key, rank, name = _NEVER, floor, _RANK_REJECTED, ""
        if at != _NEVER:
            key, rank = self._check_clock(part, at, key, rank, floor, tag)
            if key < floor:
                self.late += 1
                key = floor
        heapq.heappush(self._heap, (key, rank, name, raw, tag, event))
        heapq.heappush(self._tags, tag)
        self._bytes += _held(event, raw)

    def _check_clock(self, part: _Partition, at: float, key: float, rank: int, floor: float,
                     tag: int) -> tuple[float, int]:
        """Move the partition's watermark for an event at ``at``; return its key and rank
        (the floor for an event whose clock is off, counted as late).

        One event far ahead of the watermark (``max_clock_jump_s``) does not move it: it is
        held in place until a second one confirms the jump. A partition's first event is
        trusted only once the second agrees with it; if they disagree, the earlier is taken
        and the other is put right after it."""
        mark = part.watermark
        jump = self.max_clock_jump_s
        if mark == _NEVER:
            if part.jump is None:  # the first: its time counts once a second agrees
                part.jump, part.first_tag, part.first_key = at, tag, key
                return key, rank
            first, part.jump = part.jump, None
            if abs(at - first) <= jump:
                self._trust(part, max(at, first))
                return key, rank
            self._trust(part, min(at, first))
            self.late += 1
            if at > first:  # this one's clock is off: right after the first
                return max(part.first_key, floor), _RANK_CLOCK_OFF
            self._rekey(part.first_tag, key)  # the first's clock was off
            return key, rank
        if at - mark <= jump:
            part.jump = None
            if at > mark:
                self._trust(part, at)
            return key, rank
        if part.jump is None:  # one event far ahead: held to be confirmed, in place
            part.jump = at
            self.late += 1
            return floor, rank
        self._trust(part, min(part.jump, at))  # a second one confirms the gap
        part.jump = None
        return key, rank

    def _trust(self, part: _Partition, mark: float) -> None:
        part.watermark = mark
        if mark > self._max_mark:
            self._max_mark = mark

    def _rekey(self, tag: int, key: float) -> None:
        """Put an already buffered event (a partition's first, found to be a bad clock) right
        after ``key`` (rare: a scan of the buffer)."""
        heap = self._heap
        for i, entry in enumerate(heap):
            if entry[4] == tag:
                heap[i] = (key, _RANK_CLOCK_OFF, *entry[2:])
                heapq.heapify(heap)
                return

    def _pop(self, forced: bool = False) -> Released:
        key, _, _, raw, tag, event = heapq.heappop(self._heap)
        self._bytes -= _held(event, raw)
        if not forced:  # a forced release must not make what follows late
            self._released_key = max(self._released_key, min(key, self._max_mark))
        self._tags_remove(tag)
        return tag, event, raw

    def _tags_remove(self, tag: int) -> None:
        tags = self._tags
        if tags and tags[0] == tag:
            heapq.heappop(tags)
            while tags and tags[0] in self._gone:
                self._gone.discard(heapq.heappop(tags))
        else:
            self._gone.add(tag)

    def ready(self) -> Iterator[Released]:
        """Release, in order, every event no later event can precede."""
        assigned = self._assigned
        active = [self._floor(p) for n, p in self._partitions.items()
                  if n not in self._quiet and (assigned is None or n in assigned)]
        limit = min(active) if active else math.inf
        heap = self._heap
        while heap and (heap[0][0] < limit or len(heap) > self.capacity
                        or (self._bytes > self.max_bytes and len(heap) > 1)):
            forced = heap[0][0] >= limit
            self.forced += forced
            yield self._pop(forced)

    def flush(self) -> Iterator[Released]:
        """End of input: release everything, in order."""
        while self._heap:
            yield self._pop()
