"""The append-only audit store: SQLite in WAL mode with a SHA-256 hash chain.

Each record is stored as canonical JSON (sorted keys) beside ``body_sha256 = SHA-256(body)``,
its ``decision_id`` and ``decided_at``, and ``hash = SHA-256(prev_hash ‖ seq ‖ body_sha256 ‖
decision_id ‖ decided_at)`` (:func:`link`). Every ``checkpoint_every`` records the chain head
is also written to a checkpoint table, published outside the store (the log, a witness file,
a live Kafka run's audit topic) and returned to the caller, which puts the final head in
``summary.json``. This module writes and reads the store;
:mod:`streams.audit.verify` checks it and :mod:`streams.audit.retention` purges it under
legal holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

from detectors.events import RESERVED_IDS
from streams.audit.signing import Signer, checkpoint_message, record_message, unsigned_body
from streams.errors import AuditStoreError, OutputError, cause, sqlite_write_failure
from streams.logs import log_event

__all__ = [
    "CHECKPOINT_EVERY",
    "CONTROL_IDS",
    "GENESIS",
    "AuditStore",
    "CheckpointPublisher",
    "SqliteAuditStore",
    "WriteTransaction",
    "body_bytes",
    "canonical",
    "export_records",
    "find_records",
    "link",
    "published_head",
    "read_only",
    "seal",
    "store_id",
    "stored_bodies",
]

_LOG = logging.getLogger("placewatch")

CheckpointPublisher = Callable[[list[dict[str, Any]]], None]
"""Takes committed checkpoints, each ``{"store", "store_id", "seq", "hash", "signature"}``
(``store_id``: :func:`store_id`; ``signature``: None when unsigned); the
lines a witness file holds, so ``audit verify --witness`` reads them wherever they were kept."""

CONTROL_IDS = RESERVED_IDS
"""``decision_id`` of the store's own records (legal holds, releases, purges)."""

GENESIS = "0" * 64
CHECKPOINT_EVERY = 1000
"""Records between the store's regular checkpoints."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    decision_id TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    body BLOB,
    body_sha256 TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_decision ON records (decision_id);
CREATE TABLE IF NOT EXISTS checkpoints (seq INTEGER PRIMARY KEY, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_SIGNED_CHECKPOINTS = "ALTER TABLE checkpoints ADD COLUMN signature TEXT"
"""Stores made before checkpoints were signed gain the column (NULL: unsigned)."""


def link(prev_hash: str, seq: int, body_sha256: str, decision_id: str, decided_at: str) -> str:
    """``SHA-256(prev_hash ‖ seq ‖ body_sha256 ‖ decision_id ‖ 0x00 ‖ decided_at)``: hashes as
    hex text, ``seq`` as 8 big-endian bytes, strings as UTF-8. The decision and its time are
    chained outside the body, so they stay protected after a purge empties it."""
    return hashlib.sha256(prev_hash.encode() + seq.to_bytes(8, "big") + body_sha256.encode()
                          + decision_id.encode() + b"\x00" + decided_at.encode()).hexdigest()


def canonical(record: dict[str, object]) -> bytes:
    """The exact bytes stored and hashed for a record."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def _signed(body: bytes, prev_hash: str, seq: int, signer: Signer) -> bytes:
    """A retention record's body with its signature (of its content and place) in it."""
    unsigned, _ = unsigned_body(body)
    data = orjson.loads(unsigned)
    data["signature"] = signer.sign(record_message(prev_hash, seq, unsigned))
    return canonical(data)


def seal(record: dict[str, object]) -> tuple[str, str, bytes]:
    """A record as the store takes it: ``(decision_id, decided_at, canonical body)``.

    Holds and purges use their ``at`` time as ``decided_at``.
    """
    return (str(record["decision_id"]), str(record.get("decided_at", record.get("at", ""))),
            canonical(record))


class AuditStore(Protocol):
    """What the pipeline needs from an audit store (SQLite here; a server DB can replace it)."""

    def append(self, records: list[dict[str, object]]) -> list[tuple[int, str]]: ...

    @property
    def head(self) -> tuple[int, str]: ...

    def close(self) -> None: ...


class SqliteAuditStore:
    """Embedded audit store: one service writer, plus short-lived hold and purge writers."""

    def __init__(self, path: Path, checkpoint_every: int = CHECKPOINT_EVERY, fsync: bool = False,
                 signer: Signer | None = None, witness: Path | None = None,
                 publishers: Sequence[CheckpointPublisher] = ()) -> None:
        """``fsync``: every commit reaches the disk before it returns (``synchronous=FULL``),
        so it survives a machine crash; otherwise (``NORMAL``) it survives a crash of the
        process but may be lost with the machine. With ``signer``, retention records and
        checkpoints are signed (:mod:`streams.audit.signing`), and a checkpoint follows each
        retention record; with ``witness`` too, every signed checkpoint is also appended to
        that file (outside the data directory), one JSON line each. Every checkpoint, once
        committed, is logged (``audit checkpoint``) and handed to each of ``publishers`` (a
        live Kafka run's audit topic) as the same lines."""
        try:
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            self._db.executescript(_SCHEMA)
            columns = [r[1] for r in self._db.execute("PRAGMA table_info(checkpoints)")]
            if "signature" not in columns:
                self._db.execute(_SIGNED_CHECKPOINTS)
            # a random name for the store, made once (stores from before it get one now)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('store_id', ?)",
                             (secrets.token_hex(16),))
            self._store_id = store_id(self._db)
            row = self._db.execute(
                "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        except sqlite3.Error as exc:
            why = sqlite_write_failure(exc, path)
            if why:
                raise OutputError(f"cannot open the audit store {path} for writing: {why}"
                                  ) from exc
            raise AuditStoreError(f"cannot open audit store {path}: {exc}") from exc
        self.path = path
        self._checkpoint_every = checkpoint_every
        self._signer = signer
        self._witness = witness
        self._publishers = tuple(publishers)
        self.last_checkpoints: list[tuple[int, str, str | None]] = []
        """``(seq, hash, signature)`` of the checkpoints the last append wrote."""
        self._seq: int = row[0] if row else 0
        self._hash: str = row[1] if row else GENESIS

    @property
    def head(self) -> tuple[int, str]:
        """``(records, head hash)``."""
        return self._seq, self._hash

    def append(self, records: list[dict[str, object]]) -> list[tuple[int, str]]:
        """Append in one transaction; return the checkpoints written.

        The head is re-read inside the write transaction, so another writer (``audit hold``,
        ``audit purge``) may append to the same store while this one runs.
        """
        return self.append_bodies([seal(r) for r in records])

    def append_bodies(self, bodies: list[tuple[str, str, bytes]]) -> list[tuple[int, str]]:
        """:meth:`append` for sealed records: ``(decision_id, decided_at, canonical body)``."""
        if not bodies:
            return []
        try:
            return self._append(bodies, own_transaction=True)
        except sqlite3.Error as exc:
            raise OutputError(f"cannot write the audit store {self.path}: {cause(exc)}"
                              ) from exc

    def _append(self, bodies: list[tuple[str, str, bytes]], own_transaction: bool
                ) -> list[tuple[int, str]]:
        db = self._db
        if own_transaction:
            db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
            seq, head = (row[0], row[1]) if row else (0, GENESIS)
            rows = []
            checkpoints = []
            signer = self._signer
            for decision_id, decided_at, body in bodies:
                seq += 1
                control = decision_id in CONTROL_IDS
                if control and signer is not None:
                    body = _signed(body, head, seq, signer)
                digest = hashlib.sha256(body).hexdigest()
                new = link(head, seq, digest, decision_id, decided_at)
                rows.append((seq, decision_id, decided_at, body, digest, head, new))
                head = new
                if seq % self._checkpoint_every == 0 or (control and signer is not None):
                    checkpoints.append(self._checkpoint(seq, head))
            db.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            db.executemany("INSERT INTO checkpoints (seq, hash, signature) VALUES (?, ?, ?)",
                           checkpoints)
            if own_transaction:
                db.execute("COMMIT")
                self._witnessed(checkpoints)
        except BaseException:
            if own_transaction and db.in_transaction:  # SQLite may have rolled back itself
                db.execute("ROLLBACK")
            raise
        self._seq, self._hash = seq, head
        self.last_checkpoints = checkpoints
        return [(s, h) for s, h, _ in checkpoints]

    def _checkpoint(self, seq: int, head: str) -> tuple[int, str, str | None]:
        signer = self._signer
        return seq, head, None if signer is None else signer.sign(checkpoint_message(seq, head))

    def _witnessed(self, checkpoints: list[tuple[int, str, str | None]]) -> None:
        """Publish committed checkpoints outside the store: the signed ones to the witness
        file (flushed to disk) first, then every one to the log and to each publisher. A
        crash between the commit and here loses these publications, not the checkpoints:
        each one covers every record before it, so the next one published covers them too."""
        if not checkpoints:
            return
        where = str(self.path.resolve())
        published = [{"store": where, "store_id": self._store_id, "seq": s, "hash": h,
                      "signature": sig} for s, h, sig in checkpoints]
        signed = [line for line in published if line["signature"] is not None]
        if self._witness is not None and signed:  # first: the one that is fsynced
            lines = b"".join(orjson.dumps(line) + b"\n" for line in signed)
            try:
                with self._witness.open("ab") as out:
                    out.write(lines)
                    out.flush()
                    os.fsync(out.fileno())
            except OSError as exc:
                raise OutputError(f"cannot write the audit witness {self._witness}: "
                                  f"{cause(exc)}") from exc
        for line in published:
            log_event(_LOG, logging.INFO, "audit checkpoint", **line)
        for publish in self._publishers:
            publish(published)

    @contextlib.contextmanager
    def write_transaction(self) -> Iterator[WriteTransaction]:
        """One write transaction (``BEGIN IMMEDIATE``): what is read inside it cannot change
        before it commits, and everything written inside it commits together or not at all."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise OutputError(f"cannot write the audit store {self.path}: {cause(exc)}"
                              ) from exc
        try:
            transaction = WriteTransaction(self)
            yield transaction
            db.execute("COMMIT")
            self._witnessed(transaction.checkpoints)
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            row = db.execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
            self._seq, self._hash = (row[0], row[1]) if row else (0, GENESIS)
            raise

    def checkpoint_now(self) -> tuple[int, str]:
        """Record the current head as a checkpoint (at shutdown)."""
        row = self._db.execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        if row:
            self._seq, self._hash = row
            checkpoint = self._checkpoint(*row)
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO checkpoints (seq, hash, signature) "
                                 "VALUES (?, ?, ?)", checkpoint)
            self._witnessed([checkpoint])
        return self.head

    def close(self) -> None:
        self._db.close()


class WriteTransaction:
    """What retention does inside one write transaction of a store
    (:meth:`SqliteAuditStore.write_transaction`)."""

    __slots__ = ("_store", "checkpoints")

    def __init__(self, store: SqliteAuditStore) -> None:
        self._store = store
        self.checkpoints: list[tuple[int, str, str | None]] = []
        """Checkpoints written in this transaction (witnessed once it commits)."""

    def control_records(self) -> list[tuple[int, str, bytes | None]]:
        """``(seq, decision_id, body)`` of every legal hold and release, oldest first."""
        return self._store._db.execute(
            "SELECT seq, decision_id, body FROM records WHERE decision_id IN "
            "('__hold__', '__release__') ORDER BY seq").fetchall()

    def decision_bodies(self) -> list[tuple[int, bytes]]:
        """``(seq, body)`` of every decision record whose body is still stored."""
        return self._store._db.execute(
            "SELECT seq, body FROM records WHERE body IS NOT NULL AND decision_id NOT IN "
            f"{CONTROL_IDS!r} ORDER BY seq").fetchall()

    def empty_bodies(self, first: int, last: int) -> None:
        """Remove the bodies of decision records ``first..last`` (their hashes stay)."""
        self._store._db.execute(
            f"UPDATE records SET body = NULL WHERE seq BETWEEN ? AND ? AND decision_id NOT IN "
            f"{CONTROL_IDS!r}", (first, last))

    def append(self, records: list[dict[str, object]]) -> None:
        """Chain records in this transaction."""
        store = self._store
        store._append([seal(r) for r in records], own_transaction=False)
        self.checkpoints.extend(store.last_checkpoints)


def body_bytes(value: object) -> bytes:
    """A stored body as bytes (a tampered row may hold text or another type)."""
    return value if isinstance(value, bytes) else str(value).encode()


def read_only(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise AuditStoreError(f"no audit store at {path}")
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise AuditStoreError(f"cannot read audit store {path}: {exc}") from exc


def find_records(path: Path, decision_id: str) -> list[dict[str, object]]:
    """Every record of one decision, with its position and hashes (usually one).

    A purged record has ``record`` None and names the purge that emptied it.
    """
    db = read_only(path)
    try:
        rows = db.execute("SELECT seq, body, prev_hash, hash FROM records WHERE decision_id = ? "
                          "ORDER BY seq", (decision_id,)).fetchall()
    except sqlite3.Error as exc:
        raise AuditStoreError(f"cannot read audit store {path}: {exc}") from exc
    finally:
        db.close()
    return [{"seq": seq, "prev_hash": prev, "hash": digest,
             "record": None if body is None else orjson.loads(body_bytes(body))}
            for seq, body, prev, digest in rows]


def stored_bodies(path: Path) -> dict[str, list[bytes | None]]:
    """Every decision record's stored bytes (None once purged), by decision, in chain order."""
    db = read_only(path)
    try:
        out: dict[str, list[bytes | None]] = {}
        for decision_id, body in db.execute(
                "SELECT decision_id, body FROM records ORDER BY seq"):
            if decision_id not in CONTROL_IDS:
                out.setdefault(decision_id, []).append(None if body is None else body_bytes(body))
        return out
    except sqlite3.Error as exc:
        raise AuditStoreError(f"cannot read audit store {path}: {exc}") from exc
    finally:
        db.close()


def export_records(path: Path) -> Iterator[dict[str, object]]:
    """Every record with its chain fields: ``seq``, ``prev_hash``, ``hash``, ``body_sha256``,
    ``body`` (the exact stored text, None once purged) and ``record`` (parsed).

    An outside auditor can re-check the chain from the export alone: ``body_sha256`` is
    SHA-256 of ``body`` as UTF-8 and ``hash`` is SHA-256(``prev_hash`` ‖ ``seq`` as 8
    big-endian bytes ‖ ``body_sha256`` ‖ ``decision_id`` ‖ a zero byte ‖ ``decided_at``), the
    hashes entering as their hex text and the strings as UTF-8.
    """
    db = read_only(path)
    try:
        for seq, decision_id, decided_at, body, body_sha, prev, digest in db.execute(
                "SELECT seq, decision_id, decided_at, body, body_sha256, prev_hash, hash "
                "FROM records ORDER BY seq"):
            text = None if body is None else body_bytes(body).decode("utf-8")
            yield {"seq": seq, "decision_id": decision_id, "decided_at": decided_at,
                   "prev_hash": prev, "hash": digest,
                   "body_sha256": body_sha, "body": text,
                   "record": None if text is None else orjson.loads(text)}
    except sqlite3.Error as exc:
        raise AuditStoreError(f"cannot read audit store {path}: {exc}") from exc
    finally:
        db.close()


def store_id(db: sqlite3.Connection) -> str | None:
    """The store's name in published checkpoints: random, made when the store was first
    opened for writing (None in a store no writer of this version has opened)."""
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
    except sqlite3.OperationalError:  # no meta table
        return None
    return str(row[0]) if row else None


def published_head(store: Path) -> tuple[int, str] | None:
    """``(records, head)`` that ``summary.json`` beside the store published for it, if any."""
    summary = store.parent / "summary.json"
    try:
        data = orjson.loads(summary.read_bytes())
        if data.get("audit_store") != store.name:
            return None
        head = data["audit_head"]
        return int(head["records"]), str(head["hash"])
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None
