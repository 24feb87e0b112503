"""A live run's own health: when events last arrived, time spent processing, and whether the
audit chain still verifies.

These figures read the wall clock, so only a live ``run`` exports them (``replay``'s
``metrics.prom`` stays deterministic). The chain is re-verified in a background thread
(:class:`ChainWatch`) on start-up and every ``audit_verify_interval_s``: it opens the store
read-only, so it never holds up the writer (SQLite WAL readers see a consistent snapshot).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from streams.audit.verify import verify_store
from streams.errors import AuditStoreError
from streams.logs import log_event
from streams.sinks.outbox import DeliveryStats

__all__ = ["ChainWatch", "LiveHealth"]

_LOG = logging.getLogger("placewatch")


@dataclass(slots=True)
class LiveHealth:
    """Updated by the run loop (under the app's lock) and read by the collector."""

    started_at: float = field(default_factory=time.time)
    last_batch_at: float | None = None
    """Wall-clock time (Unix seconds) the latest batch of events finished processing."""
    processing_seconds: float = 0.0
    """Wall-clock seconds spent in the core, summed over batches."""
    batches: int = 0
    chain_checked_at: float | None = None
    chain_ok: bool | None = None
    chain_records: int = 0
    chain_problem: str = ""
    delivery: dict[str, DeliveryStats] = field(default_factory=dict)
    """Direct alert delivery, per target (public URL), when configured."""
    consumer: Callable[[], tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]] | \
        None = None
    """A Kafka source's (lag, committed offset) per (topic, partition), when it is one."""


class ChainWatch:
    """Verifies the audit store's chain now and then every ``interval_s`` seconds."""

    def __init__(self, store: Path, health: LiveHealth, interval_s: float) -> None:
        self._store = store
        self._health = health
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="placewatch-chain-verify",
                                        daemon=True)

    def start(self) -> ChainWatch:
        self._thread.start()
        return self

    def check(self) -> None:
        """One verification; the result lands in the health record (and the log if broken)."""
        try:
            result = verify_store(self._store)
            ok, records, problem = result.ok, result.records, result.problem
        except AuditStoreError as exc:
            ok, records, problem = False, 0, str(exc)
        health = self._health
        was = health.chain_ok
        health.chain_ok, health.chain_records, health.chain_problem = ok, records, problem
        health.chain_checked_at = time.time()
        if not ok and was is not False:
            log_event(_LOG, logging.ERROR, "audit chain does not verify", problem=problem,
                      records=records, store=str(self._store),
                      runbook="alerts/runbooks/PlacewatchAuditChainBroken.md")

    def _loop(self) -> None:
        while True:
            self.check()
            if self._interval <= 0 or self._stop.wait(self._interval):
                return

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
