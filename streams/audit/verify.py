"""Verification of the audit store's hash chain (``placewatch audit verify``).

:func:`verify_store` walks the chain: an edited, removed, reordered or inserted record breaks
it at that record. A truncated tail is caught by the checkpoints, unless they were removed too;
against the head published outside the store (``summary.json`` beside it by default, or
``--expect-head``), neither a truncated nor a rewritten store can pass. An emptied body is
accepted only where a later purge record (:mod:`streams.audit.retention`) names it.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from streams.audit.retention import Hold, expand_runs, hold_of, when
from streams.audit.store import CONTROL_IDS, GENESIS, body_bytes, link
from streams.errors import AuditStoreError

__all__ = ["VerifyResult", "verify_store"]


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    records: int
    head: str
    problem: str = ""
    first_bad_seq: int | None = None
    unpublished: int = 0
    """Records after the published head other than holds and purges, on an intact chain
    that passes through it (a run that stopped without writing its summary, or a forged
    tail: the chain alone cannot tell)."""


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
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        # one read transaction: records and checkpoints from the same snapshot, even while a
        # live run appends (else a checkpoint written between the two reads looks like
        # records removed from the end)
        db.execute("BEGIN")
        rows = db.execute("SELECT seq, decision_id, decided_at, body, body_sha256, prev_hash, "
                          "hash FROM records ORDER BY rowid").fetchall()
        checkpoints = dict(db.execute("SELECT seq, hash FROM checkpoints").fetchall())
        db.execute("COMMIT")
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
                or link(head, seq, body_sha, decision_id, decided_at) != stored:
            return _fail(position, head, f"{where}: content does not match its hash (edited)",
                         position)
        if body is None:
            if decision_id in CONTROL_IDS:
                return _fail(position, head, f"{where}: a hold or purge record was emptied",
                             position)
            emptied[seq] = position
        else:
            content = body_bytes(body)
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
                active[seq] = hold_of(seq, data)
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
                            "and purges may follow it", position, len(later))
    return VerifyResult(True, count, head)


def _check_purge(data: dict[str, Any], seq: int, rows: list[tuple[Any, ...]],
                 emptied: dict[int, int], holds_in_force: list[Hold]) -> str:
    """What is wrong with a purge record, or ``""``; the records it names leave ``emptied``."""
    try:
        cutoff = when(str(data.get("cutoff")))
    except AuditStoreError:
        return "purge record without a valid cutoff"
    for purged in expand_runs(data.get("purged", []), limit=seq - 1):
        row = rows[purged - 1]
        if row[1] in CONTROL_IDS:
            return f"purge names record {purged}, a hold or purge record"
        if when(str(row[2])) >= cutoff:
            return (f"purge names record {purged}, decided at {row[2]}, not before its cutoff "
                    f"{data.get('cutoff')}")
        holder = next((h for h in holds_in_force  # a group hold cannot be checked here
                       if h.attribute is None and h.covers_row(str(row[1]), str(row[2]))), None)
        if holder is not None:
            return f"purge names record {purged}, which legal hold {holder.seq} covers"
        emptied.pop(purged, None)
    return ""
