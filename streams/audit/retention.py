"""Retention and legal hold for the audit store (``placewatch audit hold|release|purge``).

Because the chain links the bodies' hashes, retention can delete a body and keep the chain
whole: :func:`purge` removes the bodies of records older than the retention period that no
legal hold covers, and appends a ``purge`` record (itself chained) that lists exactly which
records it emptied. Legal holds (:func:`add_hold`, :func:`release_hold`) are chained records
too.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from detectors.groups import group_name
from streams.audit.signing import Signer
from streams.audit.store import SqliteAuditStore, body_bytes, read_only
from streams.errors import AuditStoreError, OutputError, sqlite_write_failure

__all__ = ["Hold", "PurgeResult", "add_hold", "expand_runs", "hold_of", "holds", "purge",
           "release_hold", "when"]


def _ranges(seqs: list[int]) -> list[list[int]]:
    """Sorted sequence numbers as inclusive ``[first, last]`` runs."""
    out: list[list[int]] = []
    for seq in sorted(seqs):
        if out and out[-1][1] == seq - 1:
            out[-1][1] = seq
        else:
            out.append([seq, seq])
    return out


def expand_runs(ranges: object, limit: int) -> Iterator[int]:
    """The sequence numbers of ``[first, last]`` runs, within 1..``limit``."""
    if isinstance(ranges, list):
        for run in ranges:
            if isinstance(run, list) and len(run) == 2 and all(isinstance(v, int) for v in run):
                yield from range(max(run[0], 1), min(run[1], limit) + 1)


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
        if self.start is not None and when(decided_at) < when(self.start):
            return False
        return not (self.end is not None and when(decided_at) >= when(self.end))


def hold_of(seq: int, data: dict[str, Any]) -> Hold:
    scope = data.get("scope", {})
    return Hold(seq, str(data.get("reason", "")), scope.get("decision_id"),
                scope.get("attribute"), scope.get("group"), scope.get("from"), scope.get("to"))


def when(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise AuditStoreError(f"not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _writer(path: Path, signer: Signer | None, witness: Path | None) -> SqliteAuditStore:
    if not path.is_file():
        raise AuditStoreError(f"no audit store at {path}")
    return SqliteAuditStore(path, signer=signer, witness=witness)


def holds(path: Path) -> list[Hold]:
    """Legal holds in force (added and not released), oldest first."""
    db = read_only(path)
    try:
        rows = db.execute("SELECT seq, decision_id, body FROM records WHERE decision_id IN "
                          "('__hold__', '__release__') ORDER BY seq").fetchall()
    except sqlite3.Error as exc:
        raise AuditStoreError(f"cannot read audit store {path}: {exc}") from exc
    finally:
        db.close()
    return _in_force(rows)


def _in_force(rows: list[tuple[int, str, bytes | None]]) -> list[Hold]:
    """Holds added and not released, from the store's hold and release records."""
    active: dict[int, Hold] = {}
    for seq, kind, body in rows:
        data = orjson.loads(body_bytes(body))
        if kind == "__hold__":
            active[seq] = hold_of(seq, data)
        else:
            active.pop(int(data.get("hold", -1)), None)
    return list(active.values())


def add_hold(path: Path, reason: str, at: str, decision_id: str | None = None,
             attribute: str | None = None, group: str | None = None,
             start: str | None = None, end: str | None = None, signer: Signer | None = None,
             witness: Path | None = None) -> int:
    """Record a legal hold (chained; signed with ``signer``); return its sequence number."""
    if not reason.strip():
        raise AuditStoreError("a legal hold needs a reason")
    if (attribute is None) != (group is None):
        raise AuditStoreError("a group hold needs both the attribute and the group")
    if decision_id is None and attribute is None and start is None and end is None:
        raise AuditStoreError("a legal hold needs a scope: a decision, a group or a time range")
    for value in (start, end, at):
        if value is not None:
            when(value)
    scope = {k: v for k, v in (("decision_id", decision_id), ("attribute", attribute),
                               ("group", group), ("from", start), ("to", end)) if v is not None}
    store = _writer(path, signer, witness)
    try:
        store.append([{"decision_id": "__hold__", "kind": "legal_hold", "reason": reason,
                       "scope": scope, "at": at}])
        return store.head[0]
    finally:
        store.close()


def release_hold(path: Path, hold_seq: int, reason: str, at: str, signer: Signer | None = None,
                 witness: Path | None = None) -> None:
    """Record the release of a hold (chained; signed with ``signer``)."""
    if not any(h.seq == hold_seq for h in holds(path)):
        raise AuditStoreError(f"no legal hold in force with seq {hold_seq}")
    store = _writer(path, signer, witness)
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


def purge(path: Path, retention_days: int, now: dt.datetime, signer: Signer | None = None,
          witness: Path | None = None) -> PurgeResult:
    """Empty the bodies of decision records decided before ``now - retention_days``.

    Records a legal hold covers are kept. The purge is one transaction: the bodies are
    removed and a ``__purge__`` record naming every emptied record (as runs of ``seq``) and the
    holds that kept others is appended to the chain, so the deletion itself is verifiable.
    """
    if retention_days < 1:
        raise AuditStoreError(f"retention must be at least 1 day, got {retention_days}")
    cutoff = now - dt.timedelta(days=retention_days)
    stamp = cutoff.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    store = _writer(path, signer, witness)
    try:
        # holds are read, bodies chosen and emptied, and the purge record chained in one write
        # transaction: a hold added meanwhile waits for it, and is never purged past
        with store.write_transaction() as tx:
            active = _in_force(tx.control_records())
            chosen: list[int] = []
            held_by: dict[int, int] = {}
            for seq, body in tx.decision_bodies():
                record = orjson.loads(body_bytes(body))
                if when(str(record.get("decided_at"))) >= cutoff:
                    continue
                hold = next((h for h in active if h.covers(record)), None)
                if hold is not None:
                    held_by[hold.seq] = held_by.get(hold.seq, 0) + 1
                    continue
                chosen.append(seq)
            if not chosen:
                return PurgeResult(0, sum(held_by.values()), stamp, None, held_by)
            for first, last in _ranges(chosen):
                tx.empty_bodies(first, last)
            tx.append([{"decision_id": "__purge__", "kind": "retention_purge",
                        "retention_days": retention_days, "cutoff": stamp,
                        "at": now.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
                        "purged": _ranges(chosen), "purged_count": len(chosen),
                        "kept_by_holds": {str(k): v for k, v in sorted(held_by.items())}}])
        return PurgeResult(len(chosen), sum(held_by.values()), stamp, store.head[0], held_by)
    except sqlite3.Error as exc:
        why = sqlite_write_failure(exc, path)
        if why:  # the disk, not the store: an output error like the others
            raise OutputError(f"purge failed: cannot write the audit store {path}: {why}"
                              ) from exc
        raise AuditStoreError(f"purge failed: {exc}") from exc
    finally:
        store.close()
