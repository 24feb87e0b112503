"""The audit store as a sink: each batch's finished deep-audit records join the hash chain."""

from __future__ import annotations

import logging
from pathlib import Path

from streams.audit.signing import Signer
from streams.audit.store import SqliteAuditStore
from streams.logs import log_event
from streams.sinks.base import Batch

__all__ = ["AuditStoreSink"]

_LOG = logging.getLogger("placewatch")


class AuditStoreSink:
    """Appends records to a :class:`~streams.audit.store.SqliteAuditStore`.

    Every append is its own SQLite transaction (WAL), committed before :meth:`write` returns,
    so :meth:`durable` has nothing left to do. With ``fsync`` (a live run) each commit is
    forced to disk (``synchronous=FULL``) and survives a machine crash, as the fsynced JSON-lines
    files do; without it (a replay, which can be run again) it survives a crash of the process.
    Checkpoints are logged as they are written.
    """

    name = "audit.sqlite"

    def __init__(self, path: Path, fsync: bool = False, signer: Signer | None = None,
                 witness: Path | None = None) -> None:
        self.path = path
        self.store = SqliteAuditStore(path, fsync=fsync, signer=signer, witness=witness)

    def write(self, batch: Batch) -> None:
        if batch.audit_records:
            for records, head in self.store.append_bodies(list(batch.audit_records)):
                log_event(_LOG, logging.DEBUG, "audit checkpoint", records=records, head=head)

    def durable(self) -> None:
        return None

    def head(self) -> tuple[int, str]:
        """Checkpoint the chain now; its records and head hash (published in the summary)."""
        return self.store.checkpoint_now()

    def close(self) -> None:
        self.store.close()
