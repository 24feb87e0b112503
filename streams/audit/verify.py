"""Verification of the audit store's hash chain (``placewatch audit verify``).

:func:`verify_store` walks the chain: an edited, removed, reordered or inserted record breaks
it at that record. A truncated tail is caught by the checkpoints, unless they were removed too;
against the head published outside the store (``summary.json`` beside it by default, or
``--expect-head``), neither a truncated nor a rewritten store can pass. An emptied body is
accepted only where a later purge record (:mod:`streams.audit.retention`) names it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from streams.audit.retention import Hold, expand_runs, hold_of, when
from streams.audit.signing import Verifier, checkpoint_message, record_message, unsigned_body
from streams.audit.store import CHECKPOINT_EVERY as _CHECKPOINT_EVERY
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
                 expect_records: int | None = None, verifier: Verifier | None = None,
                 witness: list[dict[str, Any]] | None = None,
                 retention_days: int | None = None) -> VerifyResult:
    """Walk the whole chain; report the first record (by position) that does not fit.

    An emptied body must be named by a later purge record, have been decided before that
    purge's cutoff, and not be covered by a decision or time-range hold in force at the purge
    (a group hold cannot be checked once the body is gone). Only holds, releases and purges
    may follow the published head.

    A purge's cutoff must be its own time less its retention, its time not in the future, and
    its retention at least ``retention_days`` (the configured one). With ``verifier`` (the
    signing key's public half), every hold, release and purge record must carry a valid
    signature, every checkpoint must be signed and none of every 1,000 missing; with
    ``witness`` (checkpoints published outside the store), each must be signed and agree
    with the chain.
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
        columns = [r[1] for r in db.execute("PRAGMA table_info(checkpoints)")]
        signatures: dict[int, str | None] = {}
        if "signature" in columns:
            found = db.execute("SELECT seq, hash, signature FROM checkpoints").fetchall()
            signatures = {seq: signature for seq, _, signature in found}
        else:
            found = [(s, h, None) for s, h in db.execute("SELECT seq, hash FROM checkpoints")]
        checkpoints = {seq: chain_hash for seq, chain_hash, _ in found}
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
            if verifier is not None and decision_id in CONTROL_IDS:
                unsigned, signature = unsigned_body(content)
                if not verifier.valid(record_message(head, seq, unsigned), signature):
                    return _fail(position, head, f"{where}: a retention record without a valid "
                                 "signature of the signing key (forged, or written without "
                                 "the key)", position)
            if decision_id == "__hold__":
                active[seq] = hold_of(seq, data)
            elif decision_id == "__release__":
                active.pop(int(data.get("hold", -1)), None)
            elif decision_id == "__purge__":
                problem = _check_purge(data, seq, rows, emptied, list(active.values()),
                                       retention_days)
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
    if verifier is not None:
        problem = _check_signed(checkpoints, signatures, count, verifier)
        if problem:
            return VerifyResult(False, count, head, problem, None)
    if witness is not None:
        problem = _check_witness(witness, rows, verifier)
        if problem:
            return VerifyResult(False, count, head, problem, None)
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


def _check_signed(checkpoints: dict[int, str], signatures: dict[int, str | None], count: int,
                  verifier: Verifier) -> str:
    """What is wrong with the checkpoints under the signing key, or ``""``."""
    for seq in sorted(checkpoints):
        if not verifier.valid(checkpoint_message(seq, checkpoints[seq]), signatures.get(seq)):
            return (f"checkpoint {seq} is not signed by the signing key: checkpoints were "
                    "rewritten, or the store was written without the key")
    missing = [s for s in range(_CHECKPOINT_EVERY, count + 1, _CHECKPOINT_EVERY)
               if s not in checkpoints]
    if missing:
        return f"checkpoint {missing[0]} is missing: checkpoints were removed"
    return ""


def _check_witness(witness: list[dict[str, Any]], rows: list[tuple[Any, ...]],
                   verifier: Verifier | None) -> str:
    """What is wrong with the store against the checkpoints a witness file holds, or ``""``.
    Every line is checked: a witness that holds several stores' checkpoints (a dump of the
    Kafka audit topic) is narrowed to one store's by the caller (``audit verify
    --witness-store-id``), never by what the store, which a forger can write, says it is."""
    for line in witness:
        try:
            seq, chain_hash = int(line["seq"]), str(line["hash"])
        except (KeyError, TypeError, ValueError):
            return f"witness line {line!r} is not a checkpoint"
        if verifier is not None and not verifier.valid(checkpoint_message(seq, chain_hash),
                                                       line.get("signature")):
            return f"witness checkpoint {seq} is not signed by the signing key"
        if seq > len(rows):
            return (f"the witness holds checkpoint {seq} but the store ends at record "
                    f"{len(rows)}: records were removed from the end")
        if rows[seq - 1][6] != chain_hash:
            return (f"record {seq} hashes to {rows[seq - 1][6]}, not the witnessed checkpoint "
                    f"{chain_hash}: the store was rewritten")
    return ""


def _check_purge(data: dict[str, Any], seq: int, rows: list[tuple[Any, ...]],
                 emptied: dict[int, int], holds_in_force: list[Hold],
                 retention_days: int | None = None) -> str:
    """What is wrong with a purge record, or ``""``; the records it names leave ``emptied``."""
    try:
        cutoff = when(str(data.get("cutoff")))
        at = when(str(data.get("at")))
        days = data.get("retention_days")
        if not isinstance(days, int) or isinstance(days, bool) or days < 1:
            raise AuditStoreError("no retention")
    except AuditStoreError:
        return "purge record without a valid cutoff, time and retention"
    if abs((at - dt.timedelta(days=days) - cutoff).total_seconds()) > 1:
        return (f"purge cutoff {data.get('cutoff')} is not its time {data.get('at')} less its "
                f"retention of {days} days")
    if at > dt.datetime.now(dt.UTC) + dt.timedelta(hours=1):
        return f"purge dated {data.get('at')}, in the future"
    if retention_days is not None and days < retention_days:
        return (f"purge kept {days} days of records, less than the configured "
                f"audit_retention_days of {retention_days}")
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
