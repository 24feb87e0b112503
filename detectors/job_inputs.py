"""What the scheduler knew about a job when it decided, and its decision as one label.

Light on purpose (no River, no numpy): the core builds these on the event path for the deep
audit, and :mod:`detectors.shadow` learns from them.

>>> label_of("place", "spot"), label_of("queue", None)
('spot', 'queue')
"""

from __future__ import annotations

import msgspec

__all__ = ["JobInputs", "label_of"]


class JobInputs(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """What the scheduler knew about a job when it decided (msgpack-encodable, no pickle).
    Strings, numbers and tuples of them, so never in a reference cycle: the collector does not
    track it."""

    cpu: float | None = None
    memory_gb: float | None = None
    gpu: float | None = None
    slack_h: float | None = None
    """Hours from the decision to the deadline (negative: already late)."""
    runtime_h: float | None = None
    """The scheduler's own runtime forecast, in hours."""
    job_class: str | None = None
    priority: int | None = None
    attributes: tuple[tuple[str, str], ...] = ()
    """Audited attributes only, sorted by key."""
    context: tuple[tuple[str, float], ...] = ()
    """The scheduler's reported decision context (``features``), sorted by key."""


def label_of(action: str, tier: str | None) -> str:
    """The decision as one label: the tier of a placement, else the action."""
    if action == "place":
        return tier if tier else "place"
    return action
