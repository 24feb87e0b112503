"""Where a run's effects go: the :class:`~streams.sinks.base.Sink` protocol and its
implementations: ``files`` (``alerts.jsonl``, ``dead_letter.jsonl``), ``audit_store`` (the
hash-chained store), ``log`` (alert edges as log lines) and ``directory`` (a run's output
directory, which composes them)."""

from streams.sinks.base import Batch, Sink

__all__ = ["Batch", "Sink"]
