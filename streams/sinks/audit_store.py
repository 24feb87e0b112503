"""The audit store as a sink: each batch's finished deep-audit records join the hash chain."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from streams.audit.signing import Signer
from streams.audit.store import CheckpointPublisher, SqliteAuditStore
from streams.sinks.base import Batch

__all__ = ["AuditStoreSink"]


class AuditStoreSink:
    """Appends records to a :class:`~streams.audit.store.SqliteAuditStore`.

    Every append is its own SQLite transaction (WAL), committed before :meth:`write` returns,
    so :meth:`durable` has nothing left to do. With ``fsync`` (a live run) each commit is
    forced to disk (``synchronous=FULL``) and survives a machine crash, as the fsynced JSON-lines
    files do; without it (a replay, which can be run again) it survives a crash of the process.
    Checkpoints are logged (and published) by the store as they are committed.
    """

    name = "audit.sqlite"

    def __init__(self, path: Path, fsync: bool = False, signer: Signer | None = None,
                 witness: Path | None = None, publishers: Sequence[CheckpointPublisher] = ()
                 ) -> None:
        self.path = path
        self.store = SqliteAuditStore(path, fsync=fsync, signer=signer, witness=witness,
                                      publishers=publishers)

    def write(self, batch: Batch) -> None:
        if batch.audit_records:
            self.store.append_bodies(list(batch.audit_records))

    def durable(self) -> None:
        return None

    def head(self) -> tuple[int, str]:
        """Checkpoint the chain now; its records and head hash (published in the summary)."""
        return self.store.checkpoint_now()

    def close(self) -> None:
        self.store.close()
