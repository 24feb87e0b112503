"""The sink protocol: where a batch's effects go, and when they are safe.

The composition root (:func:`streams.app.create_app`) drains the core after every batch of
input events and hands each sink the same :class:`Batch`; then it calls every sink's
:meth:`Sink.durable`. When ``durable()`` has returned on every sink, the effects of every batch
written so far are safe (on disk, or accepted by the system behind the sink): that is the
point after which a Kafka consumer may commit the batch's offsets. The metrics collector is not
a sink: it pulls the core's state at scrape time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from detectors.alerts import Alert
from detectors.history import HistoryRecord
from detectors.pipeline import DeadLetter
from streams.audit.worker import Sealed

__all__ = ["Batch", "CheckpointWitness", "Sink"]


@dataclass(frozen=True, slots=True)
class Batch:
    """The effects of one batch of input events, in the order they happened."""

    first_event: int
    """``event_index`` of the batch's first input event."""
    events: int
    """Input events the batch covered (0 for the closing batch at the end of a run)."""
    dead_letters: Sequence[tuple[DeadLetter, str]]
    """Rejected events with the name of the source they came from."""
    alerts: Sequence[Alert]
    """Alert edges, ``firing`` and ``resolved``."""
    audit_records: Sequence[Sealed]
    """Deep-audit records finished since the last batch, ready for the store. Records are
    explained beside the event path, so they may belong to events of earlier batches."""
    final: bool = False
    """The run's closing batch: nothing follows it."""
    received_at: float | None = None
    """Wall-clock time (Unix seconds) the batch's first event arrived, in a live run (None in
    a replay): the start of an alert's end-to-end delivery latency."""
    settled_events: int | None = None
    """Input events, counted from the run's first, every effect of which is in this batch or
    an earlier one (deep audits still being explained hold it back): once ``durable()`` has
    returned on every sink, a source may forget them (a Kafka consumer commits their
    offsets). None: the same as ``first_event + events``."""
    history: Sequence[HistoryRecord] = ()
    """History windows closed in this batch (:mod:`detectors.history`)."""


@runtime_checkable
class Sink(Protocol):
    """Receives every batch's effects; says when they are safe."""

    name: str
    """Short name for logs and errors (``alerts.jsonl``, ``audit-store``, ...)."""

    def write(self, batch: Batch) -> None:
        """Take one batch's effects (may buffer; must not drop)."""

    def durable(self) -> None:
        """Return once everything written so far is safe."""

    def close(self) -> None:
        """Release what the sink holds; called once, after the last batch."""


@runtime_checkable
class CheckpointWitness(Protocol):
    """A sink that also publishes the audit store's checkpoints outside the run directory
    (a live Kafka run's audit topic): the store hands it each one once committed, and the
    sink's next ``durable()`` returns once they are safe too."""

    def publish_checkpoints(self, lines: list[dict[str, Any]]) -> None:
        """Take committed checkpoints (:data:`streams.audit.store.CheckpointPublisher`)."""
