"""The append-only audit store: SQLite in WAL mode with a SHA-256 hash chain.

Each record is stored as canonical JSON (sorted keys) beside ``body_sha256 = SHA-256(body)``,
and ``hash = SHA-256(prev_hash ‖ seq ‖ body_sha256)``; every ``checkpoint_every`` records the
chain head is also written to a checkpoint table and returned to the caller, which logs it and
puts the final head in ``summary.json``. :func:`verify_store` walks the chain: an edited,
removed, reordered or inserted record breaks it at that record. A truncated tail is caught by
the checkpoints, unless they were removed too; against the head published outside the store
(``summary.json`` beside it by default, or ``--expect-head``), neither a truncated nor a
rewritten store can pass.

Because the chain links the bodies' hashes, retention can delete a body and keep the chain
whole: :func:`purge` removes the bodies of records older than the retention period that no
legal hold covers, and appends a ``purge`` record (itself chained) that lists exactly which
records it emptied. Verification accepts an empty body only where a later purge record names
it. Legal holds (:func:`add_hold`, :func:`release_hold`) are chained records too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from detectors.groups import group_name
from streams.errors import AuditStoreError

__all__ = ["CONTROL_IDS", "GENESIS", "AuditStore", "PurgeResult", "SqliteAuditStore",
           "VerifyResult", "add_hold", "canonical", "export_records", "find_records", "holds",
           "published_head", "purge", "release_hold", "stored_bodies", "verify_store"]

CONTROL_IDS = ("__hold__", "__release__", "__purge__")
"""``decision_id`` of the store's own records (legal holds, releases, purges)."""

GENESIS = "0" * 64
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
"""


def _link(prev_hash: str, seq: int, body_sha256: str, decision_id: str, decided_at: str) -> str:
    """``SHA-256(prev_hash ‖ seq ‖ body_sha256 ‖ decision_id ‖ 0x00 ‖ decided_at)``: hashes as
    hex text, ``seq`` as 8 big-endian bytes, strings as UTF-8. The decision and its time are
    chained outside the body, so they stay protected after a purge empties it."""
    return hashlib.sha256(prev_hash.encode() + seq.to_bytes(8, "big") + body_sha256.encode()
                          + decision_id.encode() + b"\x00" + decided_at.encode()).hexdigest()


def canonical(record: dict[str, object]) -> bytes:
    """The exact bytes stored and hashed for a record."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


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

    def __init__(self, path: Path, checkpoint_every: int = 1000) -> None:
        try:
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
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
            raise AuditStoreError(f"audit store write failed: {exc}") from exc

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
            for decision_id, decided_at, body in bodies:
                digest = hashlib.sha256(body).hexdigest()
                seq += 1
                new = _link(head, seq, digest, decision_id, decided_at)
                rows.append((seq, decision_id, decided_at, body, digest, head, new))
                head = new
                if seq % self._checkpoint_every == 0:
                    checkpoints.append((seq, head))
            db.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            db.executemany("INSERT INTO checkpoints VALUES (?, ?)", checkpoints)
            if own_transaction:
                db.execute("COMMIT")
        except BaseException:
            if own_transaction:
                db.execute("ROLLBACK")
            raise
        self._seq, self._hash = seq, head
        return checkpoints

    def checkpoint_now(self) -> tuple[int, str]:
        """Record the current head as a checkpoint (at shutdown)."""
        row = self._db.execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        if row:
            self._seq, self._hash = row
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?)", row)
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
    """Every record of one decision, with its position and hashes (usually one).

    A purged record has ``record`` None and names the purge that emptied it.
    """
    db = _read_only(path)
    try:
        rows = db.execute("SELECT seq, body, prev_hash, hash FROM records WHERE decision_id = ? "
                          "ORDER BY seq", (decision_id,)).fetchall()
    except sqlite3.Error as exc:
        raise AuditStoreError(f"cannot read audit store {path}: {exc}") from exc
    finally:
        db.close()
    return [{"seq": seq, "prev_hash": prev, "hash": digest,
             "record": None if body is None else orjson.loads(_bytes(body))}
            for seq, body, prev, digest in rows]


def stored_bodies(path: Path) -> dict[str, list[bytes | None]]:
    """Every decision record's stored bytes (None once purged), by decision, in chain order."""
    db = _read_only(path)
    try:
        out: dict[str, list[bytes | None]] = {}
        for decision_id, body in db.execute(
                "SELECT decision_id, body FROM records ORDER BY seq"):
            if decision_id not in CONTROL_IDS:
                out.setdefault(decision_id, []).append(None if body is None else _bytes(body))
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
    db = _read_only(path)
    try:
        for seq, decision_id, decided_at, body, body_sha, prev, digest in db.execute(
                "SELECT seq, decision_id, decided_at, body, body_sha256, prev_hash, hash "
                "FROM records ORDER BY seq"):
            text = None if body is None else _bytes(body).decode("utf-8")
            yield {"seq": seq, "decision_id": decision_id, "decided_at": decided_at,
                   "prev_hash": prev, "hash": digest,
                   "body_sha256": body_sha, "body": text,
                   "record": None if text is None else orjson.loads(text)}
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


def _fail(position: int, head: str, problem: str, bad: int | None) -> VerifyResult:
    return VerifyResult(False, position - 1, head, problem, bad)


def verify_store(path: Path, expect_head: str | None = None,
                 expect_records: int | None = None) -> VerifyResult:
    """Walk the whole chain; report the first record (by position) that does not fit.

    An emptied body must be named by a later purge record, have been decided before that
    purge's cutoff, and not be covered by a decision or time-range hold in force at the purge
    (a group hold cannot be checked once the body is gone). Only holds, releases and purges
    may follow the published head.
    """
    if not path.is_file():
        raise AuditStoreError(f"no audit store at {path}")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        rows = db.execute("SELECT seq, decision_id, decided_at, body, body_sha256, prev_hash, "
                          "hash FROM records ORDER BY rowid").fetchall()
        checkpoints = dict(db.execute("SELECT seq, hash FROM checkpoints").fetchall())
        db.close()
    except sqlite3.Error as exc:
        raise AuditStoreError(f"cannot read audit store {path}: {exc}") from exc
    head = GENESIS
    emptied: dict[int, int] = {}  # purged seq -> position where its body went missing
    active: dict[int, Hold] = {}
    for position, (seq, decision_id, decided_at, body, body_sha, prev_hash, stored) in \
            enumerate(rows, start=1):
        where = f"record {position} (seq {seq}, decision {decision_id})"
        if seq != position:
            return _fail(position, head, f"{where}: expected seq {position}: a record was "
                         "removed, inserted or moved", position)
        if prev_hash != head:
            return _fail(position, head, f"{where}: does not link to the previous record",
                         position)
        if not (isinstance(body_sha, str) and isinstance(decision_id, str)
                and isinstance(decided_at, str)) \
                or _link(head, seq, body_sha, decision_id, decided_at) != stored:
            return _fail(position, head, f"{where}: content does not match its hash (edited)",
                         position)
        if body is None:
            if decision_id in CONTROL_IDS:
                return _fail(position, head, f"{where}: a hold or purge record was emptied",
                             position)
            emptied[seq] = position
        else:
            content = _bytes(body)
            if not isinstance(body, bytes) or hashlib.sha256(content).hexdigest() != body_sha:
                return _fail(position, head, f"{where}: content does not match its hash "
                             "(edited)", position)
            try:
                data = orjson.loads(content)
                if data.get("decision_id") != decision_id:
                    raise ValueError
            except (orjson.JSONDecodeError, ValueError, AttributeError):
                return _fail(position, head, f"{where}: body does not name this decision",
                             position)
            if decision_id == "__hold__":
                active[seq] = _hold_of(seq, data)
            elif decision_id == "__release__":
                active.pop(int(data.get("hold", -1)), None)
            elif decision_id == "__purge__":
                problem = _check_purge(data, seq, rows, emptied, list(active.values()))
                if problem:
                    return _fail(position, head, f"{where}: {problem}", position)
        if seq in checkpoints and checkpoints[seq] != stored:
            return _fail(position, head, f"{where}: differs from checkpoint {seq}", position)
        head = stored
    if emptied:
        seq, position = min(emptied.items())
        return _fail(position, head, f"record {position} (seq {seq}): its body was deleted but "
                     "no purge record names it", position)
    count = len(rows)
    beyond = sorted(s for s in checkpoints if s > count)
    if beyond:
        return VerifyResult(False, count, head,
                            f"store ends at record {count} but checkpoint {beyond[0]} exists: "
                            "records were removed from the end", count + 1)
    if expect_records is not None and expect_records > count:
        return VerifyResult(False, count, head,
                            f"the store holds {count} records but {expect_records} were "
                            "published: records were removed from the end", count + 1)
    if expect_head is None:
        return VerifyResult(True, count, head)
    if expect_records is None:  # find where the published head stands in the chain
        found = [i for i, row in enumerate(rows, start=1) if row[6] == expect_head]
        if expect_head == GENESIS:
            found = [0]
        if not found:
            return VerifyResult(False, count, head,
                                f"the published head {expect_head} is not in the chain: the "
                                "store was rewritten or records were removed from the end",
                                None)
        expect_records = found[0]
    at = GENESIS if expect_records == 0 else str(rows[expect_records - 1][6])
    if at != expect_head:
        return VerifyResult(False, count, head,
                            f"record {expect_records} hashes to {at}, not the published head "
                            f"{expect_head}: the store was rewritten", None)
    later = [r for r in rows[expect_records:] if r[1] not in CONTROL_IDS]
    if later:
        position = int(str(later[0][0]))
        return VerifyResult(False, count, head,
                            f"record {position} (decision {later[0][1]}) was appended after "
                            f"the published head ({expect_records} records); only legal holds "
                            "and purges may follow it", position)
    return VerifyResult(True, count, head)


def _check_purge(data: dict[str, Any], seq: int, rows: list[tuple[Any, ...]],
                 emptied: dict[int, int], holds_in_force: list[Hold]) -> str:
    """What is wrong with a purge record, or ``""``; the records it names leave ``emptied``."""
    try:
        cutoff = _when(str(data.get("cutoff")))
    except AuditStoreError:
        return "purge record without a valid cutoff"
    for purged in _expand(data.get("purged", []), limit=seq - 1):
        row = rows[purged - 1]
        if row[1] in CONTROL_IDS:
            return f"purge names record {purged}, a hold or purge record"
        if _when(str(row[2])) >= cutoff:
            return (f"purge names record {purged}, decided at {row[2]}, not before its cutoff "
                    f"{data.get('cutoff')}")
        holder = next((h for h in holds_in_force  # a group hold cannot be checked here
                       if h.attribute is None and h.covers_row(str(row[1]), str(row[2]))), None)
        if holder is not None:
            return f"purge names record {purged}, which legal hold {holder.seq} covers"
        emptied.pop(purged, None)
    return ""


def _ranges(seqs: list[int]) -> list[list[int]]:
    """Sorted sequence numbers as inclusive ``[first, last]`` runs."""
    out: list[list[int]] = []
    for seq in sorted(seqs):
        if out and out[-1][1] == seq - 1:
            out[-1][1] = seq
        else:
            out.append([seq, seq])
    return out


def _expand(ranges: object, limit: int) -> Iterator[int]:
    """The sequence numbers of ``[first, last]`` runs, within 1..``limit``."""
    if isinstance(ranges, list):
        for run in ranges:
            if isinstance(run, list) and len(run) == 2 and all(isinstance(v, int) for v in run):
                yield from range(max(run[0], 1), min(run[1], limit) + 1)


# -- retention and legal hold ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Hold:
    """A legal hold: it blocks purging of the records it covers until released."""

    seq: int
    reason: str
    decision_id: str | None = None
    attribute: str | None = None
    group: str | None = None
    start: str | None = None
    end: str | None = None

    def covers(self, record: dict[str, object]) -> bool:
        """Whether the hold keeps this decision record (matched on the event's own values)."""
        if not self.covers_row(str(record.get("decision_id")), str(record.get("decided_at"))):
            return False
        if self.attribute is None:
            return True
        try:
            event = orjson.loads(str(record.get("event", "{}")))
            value = event.get("attributes", {}).get(self.attribute)
        except (orjson.JSONDecodeError, AttributeError):
            value = None
        if value is not None:
            return bool(value == self.group)
        state = record.get("group_state")  # the attribute was not kept in the event text
        entry = state.get(self.attribute) if isinstance(state, dict) else None
        return isinstance(entry, dict) and entry.get("group") == group_name(str(self.group))

    def covers_row(self, decision_id: str, decided_at: str) -> bool:
        """The decision and time-range part of the scope (all a purged row still shows)."""
        if self.decision_id is not None and decision_id != self.decision_id:
            return False
        if self.start is not None and _when(decided_at) < _when(self.start):
            return False
        return not (self.end is not None and _when(decided_at) >= _when(self.end))


def _hold_of(seq: int, data: dict[str, Any]) -> Hold:
    scope = data.get("scope", {})
    return Hold(seq, str(data.get("reason", "")), scope.get("decision_id"),
                scope.get("attribute"), scope.get("group"), scope.get("from"), scope.get("to"))


def _when(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise AuditStoreError(f"not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _writer(path: Path) -> SqliteAuditStore:
    if not path.is_file():
        raise AuditStoreError(f"no audit store at {path}")
    return SqliteAuditStore(path)


def holds(path: Path) -> list[Hold]:
    """Legal holds in force (added and not released), oldest first."""
    db = _read_only(path)
    try:
        rows = db.execute("SELECT seq, decision_id, body FROM records WHERE decision_id IN "
                          "('__hold__', '__release__') ORDER BY seq").fetchall()
    except sqlite3.Error as exc:
        raise AuditStoreError(f"cannot read audit store {path}: {exc}") from exc
    finally:
        db.close()
    active: dict[int, Hold] = {}
    for seq, kind, body in rows:
        data = orjson.loads(_bytes(body))
        if kind == "__hold__":
            active[seq] = _hold_of(seq, data)
        else:
            active.pop(int(data.get("hold", -1)), None)
    return list(active.values())


def add_hold(path: Path, reason: str, at: str, decision_id: str | None = None,
             attribute: str | None = None, group: str | None = None,
             start: str | None = None, end: str | None = None) -> int:
    """Record a legal hold (chained); return its sequence number."""
    if not reason.strip():
        raise AuditStoreError("a legal hold needs a reason")
    if (attribute is None) != (group is None):
        raise AuditStoreError("a group hold needs both the attribute and the group")
    if decision_id is None and attribute is None and start is None and end is None:
        raise AuditStoreError("a legal hold needs a scope: a decision, a group or a time range")
    for value in (start, end, at):
        if value is not None:
            _when(value)
    scope = {k: v for k, v in (("decision_id", decision_id), ("attribute", attribute),
                               ("group", group), ("from", start), ("to", end)) if v is not None}
    store = _writer(path)
    try:
        store.append([{"decision_id": "__hold__", "kind": "legal_hold", "reason": reason,
                       "scope": scope, "at": at}])
        return store.head[0]
    finally:
        store.close()


def release_hold(path: Path, hold_seq: int, reason: str, at: str) -> None:
    """Record the release of a hold (chained)."""
    if not any(h.seq == hold_seq for h in holds(path)):
        raise AuditStoreError(f"no legal hold in force with seq {hold_seq}")
    store = _writer(path)
    try:
        store.append([{"decision_id": "__release__", "kind": "hold_released",
                       "hold": hold_seq, "reason": reason, "at": at}])
    finally:
        store.close()


@dataclass(frozen=True, slots=True)
class PurgeResult:
    purged: int
    held: int
    cutoff: str
    purge_seq: int | None
    held_by: dict[int, int] = field(default_factory=dict)


def purge(path: Path, retention_days: int, now: dt.datetime) -> PurgeResult:
    """Empty the bodies of decision records decided before ``now - retention_days``.

    Records a legal hold covers are kept. The purge is one transaction: the bodies are
    removed and a ``__purge__`` record naming every emptied record (as runs of ``seq``) and the
    holds that kept others is appended to the chain, so the deletion itself is verifiable.
    """
    if retention_days < 1:
        raise AuditStoreError(f"retention must be at least 1 day, got {retention_days}")
    cutoff = now - dt.timedelta(days=retention_days)
    active = holds(path)
    db = _read_only(path)
    try:
        rows = db.execute("SELECT seq, body FROM records WHERE body IS NOT NULL AND "
                          "decision_id NOT IN ('__hold__', '__release__', '__purge__') "
                          "ORDER BY seq").fetchall()
    finally:
        db.close()
    chosen: list[int] = []
    held_by: dict[int, int] = {}
    for seq, body in rows:
        record = orjson.loads(_bytes(body))
        if _when(str(record.get("decided_at"))) >= cutoff:
            continue
        hold = next((h for h in active if h.covers(record)), None)
        if hold is not None:
            held_by[hold.seq] = held_by.get(hold.seq, 0) + 1
            continue
        chosen.append(seq)
    stamp = cutoff.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if not chosen:
        return PurgeResult(0, sum(held_by.values()), stamp, None, held_by)
    store = _writer(path)
    try:
        db = store._db
        db.execute("BEGIN IMMEDIATE")  # bodies go and the purge record comes in one commit
        try:
            for first, last in _ranges(chosen):
                db.execute("UPDATE records SET body = NULL WHERE seq BETWEEN ? AND ? AND "
                           "decision_id NOT IN ('__hold__', '__release__', '__purge__')",
                           (first, last))
            record = {"decision_id": "__purge__", "kind": "retention_purge",
                      "retention_days": retention_days, "cutoff": stamp,
                      "at": now.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
                      "purged": _ranges(chosen), "purged_count": len(chosen),
                      "kept_by_holds": {str(k): v for k, v in sorted(held_by.items())}}
            store._append([seal(record)], own_transaction=False)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return PurgeResult(len(chosen), sum(held_by.values()), stamp, store.head[0], held_by)
    except sqlite3.Error as exc:
        raise AuditStoreError(f"purge failed: {exc}") from exc
    finally:
        store.close()
