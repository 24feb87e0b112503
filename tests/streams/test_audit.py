"""The audit store: every kind of tampering is caught; records can be shown and exported."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from simulator import SCENARIOS, Simulation
from streams.audit.store import published_head
from streams.audit.verify import verify_store
from tests.helpers import placewatch


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("audit")
    events = root / "events.jsonl"
    events.write_bytes(b"".join(raw + b"\n" for raw in
                                Simulation(SCENARIOS["override_leak"], 12_000, seed=2)))
    out = root / "run"
    result = placewatch("--quiet", "replay", str(events), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def _mutate(db: sqlite3.Connection, rng: random.Random, count: int) -> str:
    kind = rng.choice(["edit_body", "edit_hash", "edit_prev", "edit_decision", "delete",
                       "swap", "insert_middle", "append_forged", "truncate",
                       "truncate_with_checkpoints", "empty_body", "edit_body_and_sha",
                       "rename_decision", "forged_purge"])
    seq = rng.randint(1, count)
    other = rng.choice([s for s in range(1, count + 1) if s != seq])
    if kind == "edit_body":
        body = bytes(db.execute("SELECT body FROM records WHERE seq = ?", (seq,)).fetchone()[0])
        i = rng.randrange(len(body))
        edited = body[:i] + bytes([body[i] ^ (1 << rng.randrange(7))]) + body[i + 1:]
        db.execute("UPDATE records SET body = ? WHERE seq = ?", (edited, seq))
    elif kind == "empty_body":  # a deletion that no purge record accounts for
        db.execute("UPDATE records SET body = NULL WHERE seq = ?", (seq,))
    elif kind == "edit_body_and_sha":  # body and its hash rewritten together
        body = bytes(db.execute("SELECT body FROM records WHERE seq = ?", (seq,)).fetchone()[0])
        edited = body.replace(b'"rate"', b'"cost"', 1) if b'"rate"' in body else body + b" "
        db.execute("UPDATE records SET body = ?, body_sha256 = ? WHERE seq = ?",
                   (edited, hashlib.sha256(edited).hexdigest(), seq))
    elif kind == "rename_decision":  # the column, body untouched
        db.execute("UPDATE records SET decision_id = decision_id || 'x' WHERE seq = ?", (seq,))
    elif kind == "forged_purge":  # empty a recent body, append a chained purge record naming it
        last = db.execute("SELECT hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()[0]
        db.execute("UPDATE records SET body = NULL WHERE seq = ?", (count,))
        record = {"decision_id": "__purge__", "cutoff": "2000-01-01T00:00:00Z",
                  "at": "2000-01-01T00:00:00Z", "purged": [[count, count]]}
        body = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        body_sha = hashlib.sha256(body).hexdigest()
        digest = hashlib.sha256(last.encode() + (count + 1).to_bytes(8, "big") + body_sha.encode()
                                + b"__purge__\x00" + record["at"].encode())
        db.execute("INSERT INTO records VALUES (?, '__purge__', ?, ?, ?, ?, ?)",
                   (count + 1, record["at"], body, body_sha, last, digest.hexdigest()))
    elif kind == "edit_hash":
        db.execute("UPDATE records SET hash = ? WHERE seq = ?", ("f" * 64, seq))
    elif kind == "edit_prev":
        db.execute("UPDATE records SET prev_hash = ? WHERE seq = ?", ("0" * 63 + "1", seq))
    elif kind == "edit_decision":
        db.execute("UPDATE records SET decision_id = 'd-forged' WHERE seq = ?", (seq,))
    elif kind == "delete":
        db.execute("DELETE FROM records WHERE seq = ?", (seq,))
    elif kind == "swap":
        columns = "decision_id, decided_at, body, body_sha256, prev_hash, hash"
        a = db.execute(f"SELECT {columns} FROM records WHERE seq = ?", (seq,)).fetchone()
        b = db.execute(f"SELECT {columns} FROM records WHERE seq = ?", (other,)).fetchone()
        update = ("UPDATE records SET decision_id=?, decided_at=?, body=?, body_sha256=?, "
                  "prev_hash=?, hash=? WHERE seq=?")
        db.execute(update, (*b, seq))
        db.execute(update, (*a, other))
    elif kind == "insert_middle":
        db.execute("UPDATE records SET seq = seq + 1000000 WHERE seq >= ?", (seq,))
        db.execute("INSERT INTO records VALUES (?, 'd-x', '2026-11-02T00:00:00Z', X'7B7D', ?, ?, "
                   "?)", (seq, hashlib.sha256(b"{}").hexdigest(), "0" * 64, "0" * 64))
        db.execute("UPDATE records SET seq = seq - 999999 WHERE seq > 1000000")
    elif kind == "append_forged":  # a correctly chained record: only the published head tells
        last = db.execute("SELECT hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()[0]
        body = json.dumps({"decision_id": "d-forged"}, sort_keys=True).encode()
        body_sha = hashlib.sha256(body).hexdigest()
        at = "2026-11-02T00:00:00Z"
        digest = hashlib.sha256(last.encode() + (count + 1).to_bytes(8, "big") + body_sha.encode()
                                + b"d-forged\x00" + at.encode())
        db.execute("INSERT INTO records VALUES (?, 'd-forged', ?, ?, ?, ?, ?)",
                   (count + 1, at, body, body_sha, last, digest.hexdigest()))
    elif kind == "truncate":
        db.execute("DELETE FROM records WHERE seq > ?", (count - rng.randint(1, 5),))
    else:
        cut = count - rng.randint(1, 5)
        db.execute("DELETE FROM records WHERE seq > ?", (cut,))
        db.execute("DELETE FROM checkpoints WHERE seq > ?", (cut,))
    return kind


def test_a_thousand_random_mutations_are_all_detected(run_dir: Path, tmp_path: Path) -> None:
    store = run_dir / "audit.sqlite"
    published = published_head(store)
    assert published is not None
    count, head = published
    assert count >= 50
    assert verify_store(store, head, count).ok
    rng = random.Random(20261121)
    missed = []
    kinds: dict[str, int] = {}
    for trial in range(1000):
        copy = tmp_path / f"trial{trial % 4}.sqlite"
        shutil.copyfile(store, copy)
        db = sqlite3.connect(copy)
        kind = _mutate(db, rng, count)
        db.commit()
        db.close()
        kinds[kind] = kinds.get(kind, 0) + 1
        result = verify_store(copy, head, count)
        if result.ok:
            missed.append(kind)
    assert missed == []
    assert len(kinds) == 14  # every kind of mutation was tried


def test_show_and_export_let_an_outside_auditor_recheck_the_chain(run_dir: Path,
                                                                  tmp_path: Path) -> None:
    store = run_dir / "audit.sqlite"
    export = tmp_path / "export.jsonl"
    assert placewatch("audit", "export", "--store", str(store), "--out", str(export)
                      ).returncode == 0
    lines = [json.loads(x) for x in export.read_text().splitlines()]
    previous = "0" * 64
    for line in lines:  # the documented recipe, nothing of placewatch's
        body_sha = hashlib.sha256(line["body"].encode()).hexdigest()
        digest = hashlib.sha256(previous.encode() + line["seq"].to_bytes(8, "big")
                                + body_sha.encode() + line["decision_id"].encode() + b"\x00"
                                + line["decided_at"].encode())
        assert line["body_sha256"] == body_sha and json.loads(line["body"]) == line["record"]
        assert line["prev_hash"] == previous and line["hash"] == digest.hexdigest()
        previous = line["hash"]
    assert previous == published_head(store)[1]  # type: ignore[index]

    decision = lines[3]["record"]["decision_id"]
    shown = placewatch("audit", "show", decision, "--store", str(store))
    assert shown.returncode == 0, shown.stderr
    assert decision in shown.stdout and "sampled because" in shown.stdout
    missing = placewatch("audit", "show", "d-nope", "--store", str(store))
    assert missing.returncode == 1 and "no audit record" in missing.stderr


def test_audited_share_matches_the_rate_and_every_override_is_audited(run_dir: Path) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    db = sqlite3.connect(run_dir / "audit.sqlite")
    records = [json.loads(bytes(b)) for (b,) in db.execute("SELECT body FROM records")]
    db.close()
    n = summary["placements"]
    by_rate = sum("rate" in r["sampled_because"] for r in records)
    p = summary["settings"]["audit_sample_rate"]
    half_width = 2.576 * (p * (1 - p) / n) ** 0.5  # binomial 99% interval (normal approx.)
    assert abs(by_rate / n - p) <= half_width, (by_rate, n)
    events = [json.loads(line) for line in (run_dir.parent / "events.jsonl").read_text()
              .splitlines()]
    overridden = {e["decision_id"] for e in events
                  if e["event_type"] == "placement" and "override" in e}
    audited_overrides = {r["decision_id"] for r in records if "override" in r["sampled_because"]}
    assert overridden and overridden == audited_overrides
    assert summary["audited"] == len(records)


def test_audit_replay_reproduces_every_record_bit_identically(run_dir: Path,
                                                              tmp_path: Path) -> None:
    store = run_dir / "audit.sqlite"
    events = run_dir.parent / "events.jsonl"
    result = placewatch("audit", "replay", "--events", str(events), "--store", str(store))
    assert result.returncode == 0, result.stderr
    assert "records reproduced bit-identically" in result.stdout
    # a doctored store is caught record by record
    copy = tmp_path / "audit.sqlite"
    shutil.copyfile(store, copy)
    db = sqlite3.connect(copy)
    decision = db.execute("SELECT decision_id FROM records WHERE seq = 5").fetchone()[0]
    db.execute("UPDATE records SET body = replace(body, '\"rate\"', '\"Rate\"') WHERE seq = 5")
    db.commit()
    db.close()
    result = placewatch("audit", "replay", decision, "--events", str(events), "--store",
                        str(copy))
    assert result.returncode == 1 and f"NOT REPRODUCED: {decision}" in result.stderr
    # another configuration cannot reproduce it, and says why
    config = tmp_path / "other.toml"
    config.write_text("audit_sample_rate = 0.05\n")
    result = placewatch("audit", "replay", "--events", str(events), "--store", str(store),
                        "--config", str(config))
    assert result.returncode != 0 and "configuration differs" in result.stderr


def test_audit_replay_names_a_wrong_sampling_key_which_config_hash_does_not_reveal(
        run_dir: Path) -> None:
    store = run_dir / "audit.sqlite"
    events = run_dir.parent / "events.jsonl"
    result = placewatch("audit", "replay", "--events", str(events), "--store", str(store),
                        env={"PLACEWATCH_AUDIT_SAMPLE_KEY": "not-the-run-key"})
    assert result.returncode == 1
    assert "the audit_sample_key differs from the audited run's" in " ".join(result.stderr.split())


def test_one_record_with_a_changed_draw_is_not_reproduced_not_a_wrong_key(
        run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "audit.sqlite"
    shutil.copyfile(run_dir / "audit.sqlite", copy)
    db = sqlite3.connect(copy)
    decision, body = db.execute("SELECT decision_id, body FROM records WHERE seq = 3").fetchone()
    record = json.loads(body)
    record["sample_draw"] = 0.5
    db.execute("UPDATE records SET body = ? WHERE seq = 3",
               (json.dumps(record, sort_keys=True, separators=(",", ":")),))
    db.commit()
    db.close()
    result = placewatch("audit", "replay", "--events", str(run_dir.parent / "events.jsonl"),
                        "--store", str(copy))
    assert result.returncode == 1 and f"NOT REPRODUCED: {decision}" in result.stderr
    assert "audit_sample_key differs" not in result.stderr


def test_audit_replay_checks_the_key_of_records_sampled_at_rate_zero(tmp_path: Path) -> None:
    """With every rate at 0 only overrides are audited, and their records still carry the
    key's draw, which audit replay checks (it once compared them with 1.0)."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(raw + b"\n" for raw in
                                Simulation(SCENARIOS["override_leak"], 3000, seed=4)))
    env = {"PLACEWATCH_AUDIT_SAMPLE_RATE": "0", "PLACEWATCH_SHADOW_TRAIN_RATE": "0",
           "PLACEWATCH_AUDIT_OPEN_ALERT_RATE": "0"}
    out = tmp_path / "run"
    done = placewatch("--quiet", "replay", str(events), "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "summary.json").read_text())["audited"] > 0
    result = placewatch("audit", "replay", "--events", str(events), "--store",
                        str(out / "audit.sqlite"), env=env)
    assert result.returncode == 0, result.stderr
    wrong = placewatch("audit", "replay", "--events", str(events), "--store",
                       str(out / "audit.sqlite"),
                       env={**env, "PLACEWATCH_AUDIT_SAMPLE_KEY": "not-the-run-key"})
    assert wrong.returncode == 1 and "audit_sample_key differs" in " ".join(wrong.stderr.split())


def test_audit_replay_reproduces_records_that_carry_the_legacy_config_hash(
        run_dir: Path, tmp_path: Path) -> None:
    """A store written before the key left config_hash (the key's SHA-256 entered it) stays
    reproducible: its records are compared under the hash they carry."""
    from streams.settings import load_settings

    settings = load_settings(environ={})
    copy = tmp_path / "audit.sqlite"
    shutil.copyfile(run_dir / "audit.sqlite", copy)
    db = sqlite3.connect(copy)
    db.execute("UPDATE records SET body = replace(body, ?, ?)",
               (settings.config_hash, settings.legacy_config_hash))
    assert db.total_changes > 0
    db.commit()
    decisions = [d for (d,) in db.execute("SELECT decision_id FROM records LIMIT 3")]
    db.close()
    result = placewatch("audit", "replay", *decisions, "--events",
                        str(run_dir.parent / "events.jsonl"), "--store", str(copy))
    assert result.returncode == 0, result.stderr
    assert "3 of 3 records reproduced bit-identically" in result.stdout


def test_replay_notices_a_record_missing_from_a_rechained_store(run_dir: Path,
                                                                tmp_path: Path) -> None:
    copy = tmp_path / "audit.sqlite"
    shutil.copyfile(run_dir / "audit.sqlite", copy)
    db = sqlite3.connect(copy)
    gone = db.execute("SELECT decision_id FROM records WHERE seq = 10").fetchone()[0]
    db.execute("DELETE FROM records WHERE seq = 10")
    db.execute("DELETE FROM checkpoints")
    rows = db.execute("SELECT seq, body_sha256, decision_id, decided_at FROM records "
                      "ORDER BY seq").fetchall()
    previous = "0" * 64
    for new_seq, (old_seq, body_sha, decision, at) in enumerate(rows, start=1):  # forge a chain
        digest = hashlib.sha256(previous.encode() + new_seq.to_bytes(8, "big") + body_sha.encode()
                                + decision.encode() + b"\x00" + at.encode())
        db.execute("UPDATE records SET seq = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                   (-new_seq, previous, digest.hexdigest(), old_seq))
        previous = digest.hexdigest()
    db.execute("UPDATE records SET seq = -seq")
    db.commit()
    db.close()
    verify = placewatch("audit", "verify", "--store", str(copy))
    assert verify.returncode == 0 and "WARNING: no published head" in verify.stderr
    result = placewatch("audit", "replay", "--events", str(run_dir.parent / "events.jsonl"),
                        "--store", str(copy))
    assert result.returncode == 1 and f"MISSING FROM STORE: {gone}" in result.stderr
