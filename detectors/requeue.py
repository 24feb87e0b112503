"""The queue wait of a placement, as every detector and figure of the core counts it.

A ``place`` decision's wait is ``decided_at - submitted_at``. A job that was preempted (a
``preempt`` decision: a running job was evicted) and is placed again has been running, not
waiting, for most of that time: its wait is the time since its latest ``preempt`` decision
(matched by ``job_id``), whether or not the re-placement states ``submitted_at``; when it does
and the job was submitted after that preemption (a new job reusing the id), from its
submission. At equal times the sequencer applies a preemption before a placement
(:mod:`detectors.sequencer`), so a job evicted and placed again in the same instant waited
zero. A ``reject`` of a preempted job forgets it. The core remembers at most
:data:`REQUEUE_CAPACITY` preempted jobs awaiting their re-placement, oldest out (counted in
``summary.json`` as ``requeues_forgotten``); a forgotten job's re-placement counts from its
submission again, and so does one whose preemption came before a restart (the clock is not
carried over) or arrived late, after its re-placement."""

from __future__ import annotations

from typing import Final

__all__ = ["REQUEUE_CAPACITY", "RequeueClock"]

REQUEUE_CAPACITY: Final = 50_000
"""Preempted jobs remembered until they are placed again (at most about 20 MB with 256-byte
job ids)."""


class RequeueClock:
    """When each preempted job was preempted, until it is placed again (bounded, oldest out).

    >>> clock = RequeueClock(capacity=2)
    >>> clock.preempted("j1", 100.0); clock.preempted("j2", 110.0); clock.preempted("j3", 120.0)
    >>> clock.placed("j1"), clock.placed("j3"), clock.placed("j3"), clock.forgotten
    (None, 120.0, None, 1)
    """

    __slots__ = ("at", "capacity", "forgotten")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.at: dict[str, float] = {}
        self.forgotten = 0

    def preempted(self, job_id: str, when: float) -> None:
        at = self.at
        at.pop(job_id, None)
        at[job_id] = when
        if len(at) > self.capacity:
            del at[next(iter(at))]
            self.forgotten += 1

    def placed(self, job_id: str) -> float | None:
        """The time the job was last preempted, if it was (and forget it)."""
        return self.at.pop(job_id, None)
