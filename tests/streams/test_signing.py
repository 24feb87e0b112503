"""Retention records and checkpoints nobody can forge: with a signing key, whoever can write
the store can still append and re-chain it, and ``audit verify --public-key`` catches it.
Before, a forged purge, a deleted hold, a forged release and a rewritten, re-chained tail all
passed ``audit verify``, even with ``--expect-head``."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pytest

from detectors.events import Rejection, decode_event
from simulator import SCENARIOS, Simulation
from streams.audit.retention import purge
from streams.audit.store import link, store_id
from tests.helpers import placewatch


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, str, dict[str, str], Path]:
    """A replayed store written with a signing key and a witness file, with one signed hold:
    ``(store, public key, environment with the key, witness)``."""
    key = tmp_path / "keys" / "signing.key"
    key.parent.mkdir()
    made = placewatch("--quiet", "audit", "keygen", "--out", str(key))
    assert made.returncode == 0, made.stderr
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    public = made.stdout.split("public key: ")[1].strip()
    witness = tmp_path / "elsewhere" / "witness.jsonl"
    witness.parent.mkdir()
    env = {**os.environ, "PLACEWATCH_AUDIT_SIGNING_KEY_FILE": str(key),
           "PLACEWATCH_AUDIT_WITNESS_PATH": str(witness)}
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(raw + b"\n" for raw in
                                Simulation(SCENARIOS["baseline"], 4000, seed=3)))
    out = tmp_path / "run"
    done = placewatch("--quiet", "replay", str(events), "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr
    store = out / "audit.sqlite"
    held = placewatch("--quiet", "audit", "hold", "--store", str(store), "--from",
                      "2026-11-01T00:00:00Z", "--reason", "case 7", env=env)
    assert held.returncode == 0, held.stderr
    return store, public, env, witness


def _verify(store: Path, *args: str) -> tuple[bool, str]:
    done = placewatch("audit", "verify", "--store", str(store), *args)
    return done.returncode == 0, " ".join((done.stdout + done.stderr).split())


def _head(store: Path) -> tuple[int, str]:
    db = sqlite3.connect(store)
    try:
        seq, chain_hash = db.execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1"
                                     ).fetchone()
        return int(seq), str(chain_hash)
    finally:
        db.close()


def _rechain(store: Path, start: int) -> None:
    """What a forger with write access does: recompute every hash from ``start`` on, and move
    the checkpoints along (their signatures cannot be redone)."""
    db = sqlite3.connect(store)
    rows = db.execute("SELECT seq, decision_id, decided_at, body, prev_hash FROM records "
                      "WHERE seq >= ? ORDER BY seq", (start,)).fetchall()
    previous = rows[0][4]
    for seq, decision_id, decided_at, body, _ in rows:
        digest = hashlib.sha256(body).hexdigest()
        new = link(previous, seq, digest, decision_id, decided_at)
        db.execute("UPDATE records SET body_sha256 = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                   (digest, previous, new, seq))
        db.execute("UPDATE checkpoints SET hash = ? WHERE seq = ?", (new, seq))
        previous = new
    db.commit()
    db.close()


def test_a_signed_store_verifies_with_the_key_and_the_witness(
        signed: tuple[Path, str, dict[str, str], Path]) -> None:
    store, public, _, witness = signed
    lines = [json.loads(x) for x in witness.read_text().splitlines()]
    assert lines and lines[-1]["seq"] == _head(store)[0]  # the hold's own checkpoint
    ok, said = _verify(store, "--public-key", public, "--witness", str(witness))
    assert ok and "signatures of the key" in said, said
    other = placewatch("--quiet", "audit", "keygen", "--out", str(witness.parent / "other"))
    wrong = other.stdout.split("public key: ")[1].strip()
    ok, said = _verify(store, "--public-key", wrong)
    assert not ok and "TAMPERED" in said


def test_a_purge_or_release_written_without_the_key_is_caught(
        signed: tuple[Path, str, dict[str, str], Path]) -> None:
    store, public, env, _ = signed
    forger = {k: v for k, v in env.items() if not k.startswith("PLACEWATCH_AUDIT_")}
    forger["PLACEWATCH_AUDIT_RETENTION_DAYS"] = "1"
    (seq,) = [int(line.split()[1].rstrip(":")) for line in placewatch(
        "audit", "holds", "--store", str(store)).stdout.splitlines()]
    released = placewatch("--quiet", "audit", "release", str(seq), "--store", str(store),
                          "--reason", "forged", env=forger)
    assert released.returncode == 0, released.stderr
    ok, said = _verify(store, "--public-key", public)
    assert not ok and "without a valid signature" in said, said
    # the key holder's own purge does not act on the forged release: nothing is emptied
    honest = {**env, "PLACEWATCH_AUDIT_RETENTION_DAYS": "1"}
    refused = placewatch("--quiet", "audit", "purge", "--store", str(store), "--now",
                         "2026-12-01T00:00:00Z", env=honest)
    assert refused.returncode != 0 and "nothing was changed" in " ".join(refused.stderr.split())
    purged = placewatch("--quiet", "audit", "purge", "--store", str(store), "--now",
                        "2026-12-01T00:00:00Z", env=forger)
    assert purged.returncode == 0 and "purged" in purged.stdout, purged.stderr
    for extra in ((), ("--expect-head", _head(store)[1])):
        ok, said = _verify(store, "--public-key", public, *extra)
        assert not ok and "without a valid signature" in said, said
    # without the key, the purge's retention is still checked against the configured one
    ok, said = _verify(store)
    assert not ok and "less than the configured audit_retention_days of 400" in said, said


def test_a_deleted_hold_and_a_rewritten_tail_are_caught(
        signed: tuple[Path, str, dict[str, str], Path]) -> None:
    store, public, _, witness = signed
    last, head = _head(store)
    db = sqlite3.connect(store)  # the hold and its checkpoint removed, as if never placed
    db.execute("DELETE FROM records WHERE seq = ?", (last,))
    db.execute("DELETE FROM checkpoints WHERE seq = ?", (last,))
    db.commit()
    db.close()
    for extra in (("--witness", str(witness)), ("--expect-head", head)):
        ok, said = _verify(store, "--public-key", public, *extra)
        assert not ok and "TAMPERED" in said, (extra, said)

    db = sqlite3.connect(store)  # an earlier record rewritten and the tail re-chained
    seq, body = db.execute("SELECT seq, body FROM records WHERE decision_id NOT LIKE '\\_\\_%' "
                           "ESCAPE '\\' ORDER BY seq LIMIT 1 OFFSET 10").fetchone()
    record = json.loads(body)
    record["label"] = "on_demand" if record.get("label") != "on_demand" else "spot"
    db.execute("UPDATE records SET body = ? WHERE seq = ?",
               (json.dumps(record, sort_keys=True, separators=(",", ":")).encode(), seq))
    db.commit()
    db.close()
    _rechain(store, seq)
    ok, said = _verify(store, "--expect-head", _head(store)[1])
    assert ok, said  # the chain alone cannot tell: it was re-chained to the new head
    ok, said = _verify(store, "--public-key", public, "--expect-head", _head(store)[1])
    assert not ok and "not signed by the signing key" in said, said
    ok, said = _verify(store, "--public-key", public, "--witness", str(witness))
    assert not ok and "TAMPERED" in said, said


def test_a_purge_whose_cutoff_does_not_follow_from_its_time_is_caught(tmp_path: Path) -> None:
    """No key at all: a forged purge with a far-future cutoff empties nothing it may not."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(raw + b"\n" for raw in
                                Simulation(SCENARIOS["baseline"], 3000, seed=2)))
    out = tmp_path / "run"
    assert placewatch("--quiet", "replay", str(events), "--out", str(out)).returncode == 0
    store = out / "audit.sqlite"
    refused = placewatch("--quiet", "audit", "purge", "--store", str(store), "--now",
                         "2099-01-01T00:00:00Z")
    assert refused.returncode != 0 and "in the future" in refused.stderr
    short = placewatch("--quiet", "audit", "purge", "--store", str(store), "--retention-days",
                       "1", "--now", "2026-12-01T00:00:00Z")
    assert short.returncode != 0 and "less than the configured" in short.stderr
    # a forger with write access and placewatch's own code: a purge as of 2099
    assert purge(store, 400, dt.datetime(2099, 1, 1, tzinfo=dt.UTC)).purged > 0
    ok, said = _verify(store)
    assert not ok and "in the future" in said, said
    db = sqlite3.connect(store)  # the same purge, its time moved back, its cutoff not
    seq, body = db.execute("SELECT seq, body FROM records WHERE decision_id = '__purge__'"
                           ).fetchone()
    record = json.loads(body)
    record["at"] = "2026-12-01T00:00:00Z"
    db.execute("UPDATE records SET body = ? WHERE seq = ?",
               (json.dumps(record, sort_keys=True, separators=(",", ":")).encode(), seq))
    db.commit()
    db.close()
    _rechain(store, seq)
    ok, said = _verify(store)
    assert not ok and "is not its time" in said, said


def test_an_event_cannot_pass_for_a_retention_record() -> None:
    """Before, the service signed any record whose decision_id was ``__hold__``: an input
    event with it became a scope-less legal hold that kept everything."""
    from tests.helpers import line, placement

    for reserved in ("__hold__", "__release__", "__purge__"):
        rejected = decode_event(line(placement(reserved)))
        assert isinstance(rejected, Rejection) and rejected.reason == "invalid_value"
        assert "reserved" in rejected.detail


def test_a_witness_that_is_not_checkpoints_is_a_clear_error_at_a_restart(tmp_path: Path) -> None:
    from streams.errors import PlacewatchError
    from streams.sinks.directory import RunDirectory

    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(raw + b"\n" for raw in
                                Simulation(SCENARIOS["baseline"], 2000, seed=2)))
    out = tmp_path / "run"
    assert placewatch("--quiet", "replay", str(events), "--out", str(out)).returncode == 0
    for text in ("not json\n", "[1, 2]\n"):
        witness = tmp_path / "witness.jsonl"
        witness.write_text(text)
        with pytest.raises(PlacewatchError, match="audit_witness_path"):
            RunDirectory.open(out, resume=True, witness=witness)


def _store_with(path: Path, decisions: int, publish: list[dict[str, object]],
                prefix: str = "d") -> None:
    from streams.audit.store import SqliteAuditStore

    store = SqliteAuditStore(path, checkpoint_every=10, publishers=[publish.extend])
    try:
        store.append([{"decision_id": f"{prefix}-{i}", "decided_at": "2026-11-02T00:00:00Z",
                       "n": i} for i in range(decisions)])
        store.checkpoint_now()
    finally:
        store.close()


def test_every_checkpoint_is_published_and_serves_as_a_witness_beside_other_stores(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Checkpoints go to the log and to each publisher (a Kafka run's audit topic) as witness
    lines naming their store; a witness holding several stores' lines is narrowed by the
    auditor (--witness-store-id), never by what the store under check says it is."""
    ours: list[dict[str, object]] = []
    theirs: list[dict[str, object]] = []
    with caplog.at_level("INFO", logger="placewatch"):
        _store_with(tmp_path / "a.sqlite", 25, ours)
    _store_with(tmp_path / "b.sqlite", 12, theirs)
    assert [line["seq"] for line in ours] == [10, 20, 25]  # every 10, and the closing one
    name = store_id(sqlite3.connect(tmp_path / "a.sqlite"))
    other = store_id(sqlite3.connect(tmp_path / "b.sqlite"))
    assert name and other and name != other
    assert {line["store_id"] for line in ours} == {name}
    logged = [r for r in caplog.records if r.getMessage() == "audit checkpoint"]
    assert [(r.seq, r.hash) for r in logged] == [(x["seq"], x["hash"]) for x in ours]
    witness = tmp_path / "audit-topic.jsonl"
    witness.write_bytes(b"".join(json.dumps(x).encode() + b"\n" for x in ours + theirs))
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    ok, said = _verify(a, "--witness", str(witness))
    assert not ok and "holds the checkpoints of 2 stores" in said, said
    assert _verify(a, "--witness", str(witness), "--witness-store-id", name)[0]
    assert _verify(b, "--witness", str(witness), "--witness-store-id", other)[0]
    # a store emptied and renamed, or replaced by a new one, is checked against the lines
    # the auditor picked, whatever its meta table now says
    db = sqlite3.connect(a)
    db.execute("DELETE FROM records")
    db.execute("DELETE FROM checkpoints")
    db.execute("UPDATE meta SET value = 'forged'")
    db.commit()
    db.close()
    ok, said = _verify(a, "--witness", str(witness), "--witness-store-id", name)
    assert not ok and "the store ends at record 0" in said, said
    a.unlink()
    _store_with(a, 25, [], prefix="forged")
    ok, said = _verify(a, "--witness", str(witness), "--witness-store-id", name)
    assert not ok and "the store was rewritten" in said, said
    ok, said = _verify(a, "--witness", str(witness), "--witness-store-id", "nobody")
    assert not ok and "no checkpoint of store_id nobody" in said, said
