"""The append-only audit store: SQLite in WAL mode with a SHA-256 hash chain.

Each record is stored as canonical JSON (sorted keys) with ``hash = SHA-256(prev_hash ‖ seq ‖
body)``; every ``checkpoint_every`` records the chain head is also written to a checkpoint
table and returned to the caller, which logs it and puts the final head in ``summary.json``.
:func:`verify_store` walks the chain: an edited, removed, reordered or inserted record breaks
it at that record. A truncated tail is caught by the checkpoints, unless they were removed too;
against the head published outside the store (``summary.json`` beside it by default, or
``--expect-head``), neither a truncated nor a rewritten store can pass.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import orjson

from streams.errors import AuditStoreError

__all__ = ["GENESIS", "AuditStore", "SqliteAuditStore", "VerifyResult", "canonical",
           "export_records", "find_records", "published_head", "stored_bodies", "verify_store"]

GENESIS = "0" * 64
_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    decision_id TEXT NOT NULL,
    body BLOB NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_decision ON records (decision_id);
CREATE TABLE IF NOT EXISTS checkpoints (seq INTEGER PRIMARY KEY, hash TEXT NOT NULL);
"""


def _link(prev_hash: str, seq: int, body: bytes) -> str:
    return hashlib.sha256(prev_hash.encode() + seq.to_bytes(8, "big") + body).hexdigest()


def canonical(record: dict[str, object]) -> bytes:
    """The exact bytes stored and hashed for a record."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


class AuditStore(Protocol):
    """What the pipeline needs from an audit store (SQLite here; a server DB can replace it)."""

    def append(self, records: list[dict[str, object]]) -> list[tuple[int, str]]: ...

    @property
    def head(self) -> tuple[int, str]: ...

    def close(self) -> None: ...


class SqliteAuditStore:
    """Embedded audit store; one writer."""

    def __init__(self, path: Path, checkpoint_every: int = 1000) -> None:
        try:
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute(
                "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        except sqlite3.Error as exc:
            raise AuditStoreError(f"cannot open audit store {path}: {exc}") from exc
        self.path = path
        self._checkpoint_every = checkpoint_every
        self._seq: int = row[0] if row else 0
        self._hash: str = row[1] if row else GENESIS

    @property
    def head(self) -> tuple[int, str]:
        """``(records, head hash)``."""
        return self._seq, self._hash

    def append(self, records: list[dict[str, object]]) -> list[tuple[int, str]]:
        """Append in one transaction; return the checkpoints written."""
        if not records:
            return []
        rows = []
        checkpoints = []
        seq, head = self._seq, self._hash
        for record in records:
            body = canonical(record)
            seq += 1
            new = _link(head, seq, body)
            rows.append((seq, str(record["decision_id"]), body, head, new))
            head = new
            if seq % self._checkpoint_every == 0:
                checkpoints.append((seq, head))
        try:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?)", rows)
                self._db.executemany("INSERT INTO checkpoints VALUES (?, ?)", checkpoints)
        except sqlite3.Error as exc:
            raise AuditStoreError(f"audit store write failed: {exc}") from exc
        self._seq, self._hash = seq, head
        return checkpoints

    def checkpoint_now(self) -> tuple[int, str]:
        """Record the current head as a checkpoint (at shutdown)."""
        if self._seq:
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?)",
                                 (self._seq, self._hash))
        return self.head

    def close(self) -> None:
        self._db.close()


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    records: int
    head: str
    problem: str = ""
    first_bad_seq: int | None = None


def _bytes(value: object) -> bytes:
    """A stored body as bytes (a tampered row may hold text or another type)."""
    return value if isinstance(value, bytes) else str(value).encode()


def _read_only(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise AuditStoreError(f"no audit store at {path}")
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise AuditStoreError(f"cannot read audit store {path}: {exc}") from exc


def find_records(path: Path, decision_id: str) -> list[dict[str, object]]:
    """Every record of one decision, with its position and hashes (usually one)."""
    db = _read_only(path)
    try:
        rows = db.execute("SELECT seq, body, prev_hash, hash FROM records WHERE decision_id = ? "
                          "ORDER BY seq", (decision_id,)).fetchall()
    except sqlite3.Error as exc:
        raise AuditStoreError(f"cannot read audit store {path}: {exc}") from exc
    finally:
        db.close()
    return [{"seq": seq, "prev_hash": prev, "hash": digest, "record": orjson.loads(_bytes(body))}
            for seq, body, prev, digest in rows]


def stored_bodies(path: Path) -> dict[str, list[bytes]]:
    """Every record's stored bytes, by decision, in chain order."""
    db = _read_only(path)
    try:
        out: dict[str, list[bytes]] = {}
        for decision_id, body in db.execute(
                "SELECT decision_id, body FROM records ORDER BY seq"):
            out.setdefault(decision_id, []).append(_bytes(body))
        return out
    except sqlite3.Error as exc:
        raise AuditStoreError(f"cannot read audit store {path}: {exc}") from exc
    finally:
        db.close()


def export_records(path: Path) -> Iterator[bytes]:
    """Every record as one JSON line: ``seq``, ``prev_hash``, ``hash`` and the record.

    An outside auditor can re-check the chain from the export alone: ``hash`` is
    SHA-256(``prev_hash`` ‖ ``seq`` as 8 big-endian bytes ‖ the record's canonical JSON with
    sorted keys).
    """
    db = _read_only(path)
    try:
        for seq, body, prev, digest in db.execute(
                "SELECT seq, body, prev_hash, hash FROM records ORDER BY seq"):
            yield orjson.dumps({"seq": seq, "prev_hash": prev, "hash": digest,
                                "record": orjson.Fragment(_bytes(body))}) + b"\n"
    except sqlite3.Error as exc:
        raise AuditStoreError(f"cannot read audit store {path}: {exc}") from exc
    finally:
        db.close()


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


def verify_store(path: Path, expect_head: str | None = None,
                 expect_records: int | None = None) -> VerifyResult:
    """Walk the whole chain; report the first record (by position) that does not fit."""
    if not path.is_file():
        raise AuditStoreError(f"no audit store at {path}")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        rows = db.execute("SELECT seq, decision_id, body, prev_hash, hash FROM records "
                          "ORDER BY rowid").fetchall()
        checkpoints = dict(db.execute("SELECT seq, hash FROM checkpoints").fetchall())
        db.close()
    except sqlite3.Error as exc:
        raise AuditStoreError(f"cannot read audit store {path}: {exc}") from exc
    head = GENESIS
    for position, (seq, decision_id, body, prev_hash, stored) in enumerate(rows, start=1):
        where = f"record {position} (seq {seq}, decision {decision_id})"
        if seq != position:
            return VerifyResult(False, position - 1, head,
                                f"{where}: expected seq {position}: a record was removed, "
                                "inserted or moved", position)
        if prev_hash != head:
            return VerifyResult(False, position - 1, head,
                                f"{where}: does not link to the previous record", position)
        content = _bytes(body)
        if not isinstance(body, bytes) or _link(head, seq, content) != stored:
            return VerifyResult(False, position - 1, head,
                                f"{where}: content does not match its hash (edited)", position)
        try:
            if orjson.loads(content).get("decision_id") != decision_id:
                raise ValueError
        except (orjson.JSONDecodeError, ValueError, AttributeError):
            return VerifyResult(False, position - 1, head,
                                f"{where}: body does not name this decision", position)
        if seq in checkpoints and checkpoints[seq] != stored:
            return VerifyResult(False, position - 1, head,
                                f"{where}: differs from checkpoint {seq}", position)
        head = stored
    count = len(rows)
    beyond = sorted(s for s in checkpoints if s > count)
    if beyond:
        return VerifyResult(False, count, head,
                            f"store ends at record {count} but checkpoint {beyond[0]} exists: "
                            "records were removed from the end", count + 1)
    if expect_records is not None and expect_records != count:
        return VerifyResult(False, count, head,
                            f"the store holds {count} records but {expect_records} were "
                            "published: records were removed from the end or appended",
                            min(count, expect_records) + 1)
    if expect_head is not None and expect_head != head:
        return VerifyResult(False, count, head,
                            f"head {head} is not the published {expect_head}: the store "
                            "was rewritten or records were removed from the end", None)
    return VerifyResult(True, count, head)
