"""Deep audits in the shell: the worker process, the bounded backlog, redaction, stratified
sampling, retention with legal holds, and the Parquet export."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sqlite3
from pathlib import Path

import pytest

from detectors import AuditCore, CoreConfig
from detectors.audit_work import Explain
from simulator import SCENARIOS, Simulation
from streams.audit.retention import holds, purge
from streams.audit.verify import verify_store
from streams.audit.worker import AuditorParams, InlineAudits, ProcessAudits
from tests.helpers import placewatch


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("deep") / "events.jsonl"
    path.write_bytes(b"".join(raw + b"\n" for raw in
                              Simulation(SCENARIOS["equity_drift"], 30_000, seed=4)))
    return path


def _bodies(store: Path) -> dict[str, bytes]:
    db = sqlite3.connect(store)
    try:
        return {d: bytes(b) for d, b in db.execute("SELECT decision_id, body FROM records")}
    finally:
        db.close()


def test_worker_process_writes_the_same_records_as_inline(events: Path, tmp_path: Path) -> None:
    inline = tmp_path / "inline"
    worker = tmp_path / "worker"
    assert placewatch("--quiet", "replay", str(events), "--out", str(inline)).returncode == 0
    result = placewatch("--quiet", "replay", str(events), "--out", str(worker),
                        env={**os.environ, "PLACEWATCH_AUDIT_WORKER": "process"})
    assert result.returncode == 0, result.stderr
    a, b = _bodies(inline / "audit.sqlite"), _bodies(worker / "audit.sqlite")
    assert len(a) > 300 and a == b
    summary = json.loads((worker / "summary.json").read_text())
    assert summary["audit_deferred"] == 0 and summary["shadow_training_skipped"] == 0
    metrics = (worker / "metrics.prom").read_text()
    assert 'placewatch_audit_model_accuracy{model="shadow"}' in metrics


def _requests(count: int) -> list[Explain]:
    core = AuditCore(CoreConfig(audit_sample_rate=1.0))
    out: list[Explain] = []
    for raw in Simulation(SCENARIOS["baseline"], 400, seed=1):
        core.process(raw)
        out += [w for w in core.drain().audit_work if isinstance(w, Explain)]
    return out[:count]


def test_a_full_backlog_defers_and_counts_never_drops() -> None:
    items = _requests(40)
    audits = ProcessAudits(AuditorParams.from_config(CoreConfig(), "USD"), backlog=5)
    try:
        now = audits.submit(list(items))
    finally:
        later = audits.close()
    records = [json.loads(body) for *_, body in now + later]
    assert sorted(r["decision_id"] for r in records) == sorted(json.loads(i.raw)["decision_id"]
                                                                for i in items)
    deferred = [r for r in records if "deferred" in r]
    assert len(deferred) == 35 and audits.status.deferred == 35
    assert all("explanations" not in r and r["event_sha256"] for r in deferred)
    assert audits.status.explained == 5
    # the same requests inline: nothing deferred, same fields where the deferred ones have them
    full = InlineAudits(AuditorParams.from_config(CoreConfig(), "USD").build()).submit(items)
    by_id = {d: json.loads(body) for d, _, body in full}
    for record in deferred:
        assert all(by_id[record["decision_id"]][k] == v for k, v in record.items()
                   if k != "deferred")


def test_records_keep_only_audited_attributes_and_redact_free_text(events: Path,
                                                                   tmp_path: Path) -> None:
    config = tmp_path / "private.toml"
    config.write_text('attributes = ["team"]\naudit_redact_fields = ["override.reason", '
                      '"override.by", "job.budget_code"]\naudit_sample_rate = 0.05\n')
    out = tmp_path / "run"
    result = placewatch("--quiet", "replay", str(events), "--out", str(out), "--config",
                        str(config))
    assert result.returncode == 0, result.stderr
    records = [json.loads(b) for b in _bodies(out / "audit.sqlite").values()]
    assert records
    for record in records:
        event = json.loads(record["event"])
        assert set(event["attributes"]) == {"team"}
        assert event["job"]["budget_code"] == "[redacted]"
        assert "attributes.department" in record["redacted_fields"]
        assert set(record["group_state"]) == {"team"}
        if "override" in event:
            assert event["override"]["reason"] == "[redacted]"
    metrics = (out / "metrics.prom").read_text()
    assert 'attribute="department"' not in metrics and 'attribute="team"' in metrics
    replay = placewatch("audit", "replay", "--events", str(events), "--store",
                        str(out / "audit.sqlite"), "--config", str(config))
    assert replay.returncode == 0, replay.stderr


def test_audited_share_is_the_rate_plus_the_stratified_additions(events: Path,
                                                                 tmp_path: Path) -> None:
    config = tmp_path / "strata.toml"
    config.write_text("audit_cost_threshold = 2.0\naudit_open_alert_rate = 0.1\n")
    out = tmp_path / "run"
    assert placewatch("--quiet", "replay", str(events), "--out", str(out), "--config",
                      str(config)).returncode == 0
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(b) for b in _bodies(out / "audit.sqlite").values()]
    n = summary["placements"]
    reasons = [set(r["sampled_because"]) for r in records]
    by_rate = sum("rate" in r for r in reasons)
    half = 2.576 * math.sqrt(0.02 * 0.98 / n)
    assert abs(by_rate / n - 0.02) <= half
    placements = [json.loads(line) for line in events.read_text().splitlines()
                  if '"placement"' in line]
    costly = {p["decision_id"] for p in placements
              if p["decision"].get("predicted_cost", 0) >= 2.0}
    assert costly and costly == {r["decision_id"] for r in records
                                 if "cost" in r["sampled_because"]}
    alerted = [r for r in records if "open_alert" in r["sampled_because"]]
    assert alerted and all(r["open_alerts"] and r["sample_draw"] < 0.1 for r in alerted)
    assert all(r["sampled_because"] for r in records)
    assert summary["audited"] == len(records)


def test_purge_respects_legal_holds_and_stays_verifiable(events: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert placewatch("--quiet", "replay", str(events), "--out", str(out)).returncode == 0
    store = out / "audit.sqlite"
    records = {d: json.loads(b) for d, b in _bodies(store).items()}
    first = min(records.values(), key=lambda r: r["decided_at"])
    genomics = [d for d, r in records.items()
                if r["group_state"].get("team", {}).get("group") == "genomics"]
    hold = placewatch("audit", "hold", "--store", str(store), "--group", "team=genomics",
                      "--reason", "case 2026-114")
    assert hold.returncode == 0, hold.stderr
    one = placewatch("audit", "hold", "--store", str(store), "--decision",
                     first["decision_id"], "--reason", "auditor request")
    assert one.returncode == 0 and len(holds(store)) == 2
    # the simulated week is long past by now: with 1 day's retention everything else goes
    result = purge(store, 1, dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    kept = set(genomics) | {first["decision_id"]}
    assert result.purged == len(records) - len(kept) and result.held == len(kept)
    verified = placewatch("audit", "verify", "--store", str(store), env=_ONE_DAY)
    assert verified.returncode == 0, verified.stderr
    left = {d: b for d, b in _bodies_or_none(store).items() if not d.startswith("__")}
    assert {d for d, b in left.items() if b is not None} == kept
    shown = placewatch("audit", "show", next(d for d in records if d not in kept),
                       "--store", str(store))
    assert shown.returncode == 0 and "purged under the retention policy" in shown.stdout
    replay = placewatch("audit", "replay", "--events", str(events), "--store", str(store))
    assert replay.returncode == 0 and "purged records skipped" in replay.stdout, replay.stderr
    # a body deleted outside a purge is caught
    db = sqlite3.connect(store)
    db.execute("UPDATE records SET body = NULL WHERE decision_id = ?", (first["decision_id"],))
    db.commit()
    db.close()
    broken = verify_store(store)
    assert not broken.ok and "no purge record names it" in broken.problem


def test_a_released_hold_no_longer_keeps_its_records(events: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert placewatch("--quiet", "replay", str(events), "--out", str(out)).returncode == 0
    store = out / "audit.sqlite"
    records = {d: json.loads(b) for d, b in _bodies(store).items()}
    kept = min(records.values(), key=lambda r: r["decided_at"])["decision_id"]
    hold = placewatch("audit", "hold", "--store", str(store), "--decision", kept,
                      "--reason", "auditor request")
    assert hold.returncode == 0, hold.stderr
    (seq,) = [h.seq for h in holds(store)]
    listed = placewatch("audit", "holds", "--store", str(store))
    assert f"hold {seq}: decision={kept} (auditor request)" in listed.stdout
    later = ("--retention-days", "1", "--now", "2026-12-01T00:00:00Z")
    first = placewatch("audit", "purge", "--store", str(store), *later, env=_ONE_DAY)
    assert first.returncode == 0 and "1 kept by legal holds" in first.stdout, first.stdout
    assert _bodies_or_none(store)[kept] is not None
    # releasing needs a hold that is in force, and a reason
    assert placewatch("audit", "release", str(seq + 999), "--store", str(store),
                      "--reason", "done").returncode != 0
    released = placewatch("audit", "release", str(seq), "--store", str(store),
                          "--reason", "case closed")
    assert released.returncode == 0 and f"hold {seq} released" in released.stdout
    assert holds(store) == []
    assert "no legal holds in force" in placewatch("audit", "holds", "--store",
                                                    str(store)).stdout
    second = placewatch("audit", "purge", "--store", str(store), *later, env=_ONE_DAY)
    assert second.returncode == 0 and "purged 1 records" in second.stdout, second.stdout
    assert _bodies_or_none(store)[kept] is None
    verified = placewatch("audit", "verify", "--store", str(store), env=_ONE_DAY)
    assert verified.returncode == 0, verified.stderr


_ONE_DAY = {**os.environ, "PLACEWATCH_AUDIT_RETENTION_DAYS": "1"}
"""The retention the purges above used: verify checks a purge against the configured one."""


def _bodies_or_none(store: Path) -> dict[str, bytes | None]:
    db = sqlite3.connect(store)
    try:
        return {d: None if b is None else bytes(b)
                for d, b in db.execute("SELECT decision_id, body FROM records")}
    finally:
        db.close()


def test_parquet_export_holds_every_record_and_its_hashes(events: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "run"
    assert placewatch("--quiet", "replay", str(events), "--out", str(out)).returncode == 0
    target = tmp_path / "audit.parquet"
    result = placewatch("audit", "export", "--store", str(out / "audit.sqlite"), "--out",
                        str(target))
    assert result.returncode == 0, result.stderr
    table = pq.read_table(target).to_pylist()
    bodies = _bodies(out / "audit.sqlite")
    assert len(table) == len(bodies)
    for row in table:
        assert row["body"].encode() == bodies[row["decision_id"]]
        assert json.loads(row["body"])["decision"]["label"] == row["decision_label"]
    assert placewatch("audit", "export", "--store", str(out / "audit.sqlite"), "--out",
                      str(tmp_path / "x.csv")).returncode != 0


def test_odd_events_get_a_record_and_hidden_duplicates_do_not_leak(tmp_path: Path) -> None:
    base = {"event_type": "placement", "schema_version": 1, "job_id": "j",
            "decided_at": "2026-11-02T08:00:00Z", "attributes": {"team": "a"},
            "job": {"requested": {"cpu": 4}}, "decision": {"action": "place", "tier": "free",
                                                           "price_per_hour": 0,
                                                           "predicted_runtime_s": 60}}
    lines = [json.dumps({**base, "decision_id": f"d-{i}"}) for i in range(300)]
    secret = lines[7][:-1] + ', "attributes": {"team": "a"}}'  # a hidden first "attributes"
    secret = secret.replace('"attributes": {"team": "a"}', '"attributes": {"team": "a", '
                            '"religion": "SECRET"}', 1)
    events = tmp_path / "odd.jsonl"
    events.write_text("\n".join([*lines[:7], secret, *lines[8:]]) + "\n")
    config = tmp_path / "all.toml"
    config.write_text('audit_sample_rate = 1.0\nattributes = ["team"]\nshadow_min_examples = 5\n')
    out = tmp_path / "run"
    result = placewatch("--quiet", "replay", str(events), "--out", str(out), "--config",
                        str(config))
    assert result.returncode == 0, result.stderr
    records = [json.loads(b) for b in _bodies(out / "audit.sqlite").values()]
    assert len(records) == 300
    assert all("SECRET" not in r["event"] for r in records)
    assert all("Cost not split" in r["explanations"]["cost_drivers"][0] for r in records)
    again = placewatch("--quiet", "replay", str(events), "--out", str(out))
    assert again.returncode != 0 and "already holds 300 audit records" in again.stderr
