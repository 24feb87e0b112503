"""`placewatch replay`: the contract's files, byte-identical reruns, nothing lost."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from simulator import SCENARIOS, Simulation
from tests.helpers import BAD_INPUTS, line, outcome, placement, placewatch

ALERT_FIELDS = {"alert", "kind", "severity", "attribute", "group", "metric", "value",
                "reference", "decision_id", "event_index", "at"}
SUMMARY_FIELDS = {"events_in", "placements", "outcomes", "duplicates", "rejected",
                  "orphaned_outcomes", "audited", "alerts", "fairness", "audit_store"}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "leak.jsonl"
    sim = Simulation(SCENARIOS["override_leak"], 20_000, seed=4)
    path.write_bytes(b"".join(raw + b"\n" for raw in sim))
    return path


def test_replay_writes_every_contract_file_twice_identically(simulated: Path,
                                                             tmp_path: Path) -> None:
    outs = []
    for name in ("a", "b"):
        result = placewatch("--quiet", "replay", str(simulated), "--out", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
        outs.append(tmp_path / name)
    for name in ("alerts.jsonl", "summary.json", "dead_letter.jsonl", "metrics.prom"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    days = sorted(p.name for p in (outs[0] / "history").iterdir())
    assert days and days == sorted(p.name for p in (outs[1] / "history").iterdir())
    for day in days:
        assert (outs[0] / "history" / day).read_bytes() == \
            (outs[1] / "history" / day).read_bytes(), day
    records = []
    for out in outs:
        db = sqlite3.connect(out / "audit.sqlite")
        records.append(db.execute("SELECT seq, body, hash FROM records ORDER BY seq").fetchall())
        db.close()
    assert records[0] == records[1] and records[0]

    summary = json.loads((outs[0] / "summary.json").read_text())
    assert set(summary) >= SUMMARY_FIELDS
    assert summary["events_in"] == 20_000 == (summary["placements"] + summary["outcomes"]
                                              + summary["duplicates"] + summary["rejected"])
    assert summary["audited"] == len(records[0])
    assert (outs[0] / summary["audit_store"]).is_file()
    team = summary["fairness"]["team"]
    assert "genomics" in team["groups"]
    assert {"placements", "preferred_rate", "queue_rate"} <= set(team["groups"]["genomics"])
    pref = team["disparity"]["preferred_rate"]
    assert {"parity_difference", "parity_ratio"} <= set(pref)

    alerts = [json.loads(x) for x in (outs[0] / "alerts.jsonl").read_text().splitlines()]
    assert alerts, "the leaked override must be reported"
    assert all(set(a) >= ALERT_FIELDS for a in alerts)
    leak = [a for a in alerts if a["kind"] == "override_expired"]
    assert leak and "capacity pin" in leak[0]["details"]["override_reason"]
    assert (outs[0] / "metrics.prom").read_text().count("placewatch_events_total") >= 4


def test_bad_input_is_dead_lettered_and_counted(tmp_path: Path) -> None:
    good = [line(placement(f"d-{i}")) for i in range(20)] + [line(outcome("d-1"))]
    dup = [line(placement("d-3"))]
    bad = [raw for _, raw in BAD_INPUTS]
    mixed = tmp_path / "mixed.jsonl"
    rows = good[:10] + bad[:8] + dup + good[10:] + bad[8:]
    mixed.write_bytes(b"\n".join(r.replace(b"\n", b" ") for r in rows) + b"\n")
    out = tmp_path / "out"
    result = placewatch("--quiet", "replay", str(mixed), "--out", str(out))
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["events_in"] == len(rows)
    assert summary["events_in"] == (summary["placements"] + summary["outcomes"]
                                    + summary["duplicates"] + summary["rejected"])
    assert (summary["placements"], summary["outcomes"], summary["duplicates"]) == (20, 1, 1)
    letters = [json.loads(x) for x in (out / "dead_letter.jsonl").read_text().splitlines()]
    assert len(letters) == summary["rejected"] == len(bad)
    assert sorted(d["reason"] for d in letters) == sorted(r for r, _ in BAD_INPUTS)
    by_index = {d["event_index"]: d for d in letters}
    for index, raw in enumerate(rows):
        if raw in bad:
            letter = by_index[index]
            stored = letter["raw"].encode() if "raw" in letter else base64.b64decode(
                letter["raw_base64"])
            if letter.get("raw_truncated"):  # a line over 1 MiB: its head, length and hash
                assert raw.startswith(stored) and letter["length"] == len(raw)
                assert letter["sha256"] == hashlib.sha256(raw).hexdigest()
            else:
                assert stored == raw
            assert letter["source"] == f"mixed.jsonl:{index + 1}"


def test_gzip_input_and_missing_file(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "e.jsonl.gz"
    path.write_bytes(gzip.compress(line(placement()) + b"\n"))
    ok = placewatch("--quiet", "replay", str(path), "--out", str(tmp_path / "o"))
    assert ok.returncode == 0, ok.stderr
    missing = placewatch("replay", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "p"))
    assert missing.returncode == 3
    assert "no such file" in missing.stderr


def test_audit_verify_accepts_intact_and_names_a_tampered_record(simulated: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert placewatch("--quiet", "replay", str(simulated), "--out", str(out)).returncode == 0
    store = out / "audit.sqlite"
    head = json.loads((out / "summary.json").read_text())["audit_head"]["hash"]
    ok = placewatch("audit", "verify", "--store", str(store), "--expect-head", head)
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout
    db = sqlite3.connect(store)
    db.execute("UPDATE records SET body = replace(body, 'rate', 'RATE') WHERE seq = 7")
    db.commit()
    db.close()
    bad = placewatch("audit", "verify", "--store", str(store))
    assert bad.returncode == 1
    assert "record 7" in bad.stderr and "edited" in bad.stderr


@pytest.mark.parametrize("tamper", [
    "DELETE FROM records WHERE seq = (SELECT max(seq) FROM records)",
    "DELETE FROM records WHERE seq = (SELECT max(seq) FROM records); DELETE FROM checkpoints",
    "DELETE FROM records; DELETE FROM checkpoints",
    "DELETE FROM records WHERE seq = 3",
    "UPDATE records SET seq = seq + 1000 WHERE seq = 2",
    "UPDATE checkpoints SET hash = 'x'",
])
def test_audit_verify_catches_tampering_against_the_published_head(
        simulated: Path, tmp_path: Path, tamper: str) -> None:
    out = tmp_path / "out"
    assert placewatch("--quiet", "replay", str(simulated), "--out", str(out)).returncode == 0
    store = out / "audit.sqlite"
    assert placewatch("audit", "verify", "--store", str(store)).returncode == 0
    db = sqlite3.connect(store)
    db.executescript(tamper)
    db.commit()
    db.close()
    result = placewatch("audit", "verify", "--store", str(store))
    assert result.returncode == 1, result.stdout
    assert "TAMPERED" in result.stderr


def test_missing_second_input_fails_before_any_output(simulated: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = placewatch("replay", str(simulated), str(tmp_path / "gone.jsonl"), "--out", str(out))
    assert result.returncode == 3 and "gone.jsonl" in result.stderr
    assert not out.exists()


def test_error_text_is_not_read_as_markup(tmp_path: Path) -> None:
    result = placewatch("replay", str(tmp_path / "x[/]z.jsonl"), "--out", str(tmp_path / "o"))
    assert result.returncode == 3
    assert "x[/]z.jsonl" in result.stderr and "Traceback" not in result.stderr


def _samples(text: str, family: str) -> dict[tuple[tuple[str, str], ...], float]:
    import re
    return {tuple(sorted(re.findall(r'(\w+)="([^"]*)"', labels))): float(value)
            for labels, value in re.findall(rf"^{family}{{([^}}]*)}} (\S+)$", text, re.M)}


def test_spend_group_flips_and_overrides_in_metrics_are_what_events_and_records_say(
        simulated: Path, tmp_path: Path) -> None:
    """The dashboards' cost of fairness, group-flip rates and overrides, recounted here from
    the input events and the audit records themselves."""
    out = tmp_path / "out"
    config = tmp_path / "pairs.toml"  # a pair is tracked, never flipped
    config.write_text('attribute_pairs = [["team", "region"]]\n')
    result = placewatch("--quiet", "replay", str(simulated), "--out", str(out), "--config",
                        str(config))
    assert result.returncode == 0, result.stderr
    text = (out / "metrics.prom").read_text()
    assert 'attribute="team*region"' in text

    spend: dict[tuple[str, str], float] = {}
    priced: dict[tuple[str, str], int] = {}
    overridden = 0
    seen: set[str] = set()
    for raw in simulated.read_bytes().splitlines():
        event = json.loads(raw)
        if event["event_type"] != "placement" or event["decision_id"] in seen:
            continue  # a duplicate is applied once
        seen.add(event["decision_id"])
        overridden += "override" in event
        decision = event["decision"]
        if decision["action"] != "place" or not decision.get("tier"):
            continue
        cost = decision.get("predicted_cost")
        if cost is None:
            cost = decision["price_per_hour"] * decision["predicted_runtime_s"] / 3600
        key = (event["attributes"]["team"],
               "cheap" if decision["tier"] in ("spot", "reserved") else "premium")
        spend[key] = spend.get(key, 0.0) + cost
        priced[key] = priced.get(key, 0) + 1
    got_spend = {(dict(k)["group"], dict(k)["tier"]): v
                 for k, v in _samples(text, "placewatch_group_spend_total").items()
                 if dict(k)["attribute"] == "team"}
    got_priced = {(dict(k)["group"], dict(k)["tier"]): v
                  for k, v in _samples(text, "placewatch_group_priced_placements_total").items()
                  if dict(k)["attribute"] == "team"}
    # (series at 0 are the tiers a group has not used yet: tests/streams/test_metrics.py)
    assert {k: v for k, v in got_priced.items() if v} == priced
    assert {"cheap", "premium"} <= {t for _, t in priced}
    assert {k for k, v in got_spend.items() if v} == set(spend)
    for key, value in spend.items():
        assert got_spend[key] == pytest.approx(value, rel=1e-9), key

    flips: dict[tuple[str, str], list[int]] = {}
    db = sqlite3.connect(out / "audit.sqlite")
    bodies = [json.loads(b) for (b,) in db.execute("SELECT body FROM records") if b]
    db.close()
    for record in bodies:
        tried = (record.get("explanations") or {}).get("group_flips") or {}
        if not tried.get("checked"):
            continue
        flipped = {f["attribute"] for f in tried["flipped"]}
        for attribute, held in record["group_state"].items():
            if attribute not in json.loads(record["event"])["attributes"]:
                continue  # a pair of attributes: never flipped
            cell = flips.setdefault((attribute, held["group"]), [0, 0])
            cell[0] += attribute in flipped
            cell[1] += 1
    got_flips = _samples(text, "placewatch_audit_group_flips_total")
    got_checks = _samples(text, "placewatch_audit_group_flip_checks_total")
    assert sum(k for k, _ in flips.values()) > 0
    assert {(dict(k)["attribute"], dict(k)["group"]): [int(v), int(got_checks[k])]
            for k, v in got_flips.items() if got_checks[k]} == flips

    overrides = {dict(k)["state"]: v
                 for k, v in _samples(text, "placewatch_override_placements_total").items()}
    alerts = [json.loads(a) for a in (out / "alerts.jsonl").read_text().splitlines()]
    assert overrides["active"] + overrides["expired"] == overridden > 0
    assert overrides["expired"] >= sum(a["kind"] == "override_expired"
                                       and a["state"] == "firing" for a in alerts) > 0
