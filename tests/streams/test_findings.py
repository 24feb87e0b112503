"""Findings: one per firing edge, closed by the detector's resolved edge or by a person, with
remediation age in the store, the metrics and the CLI."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from detectors.alerts import Alert, fingerprint
from simulator import SCENARIOS, Simulation
from streams.app import create_app
from streams.errors import PlacewatchError
from streams.findings import FindingsSink, FindingsStore
from streams.settings import load_settings
from streams.sinks.base import Batch


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A drift that starts at 40,000 and is undone at 55,000: it fires and resolves."""
    out = tmp_path_factory.mktemp("findings") / "run"
    sim = Simulation(SCENARIOS["equity_drift"], 100_000, seed=1, revert_at=55_000)
    create_app(load_settings(environ={})).replay((("sim", raw) for raw in sim), out)
    return out


def _edges(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]


def _at(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_every_firing_edge_is_a_finding_and_the_detector_closes_it(replayed: Path) -> None:
    edges = _edges(replayed)
    store = FindingsStore(replayed / "findings.sqlite", create=False)
    try:
        found = sorted(store.list(), key=lambda f: f.id)
    finally:
        store.close()
    fired = [e for e in edges if e["state"] == "firing"]
    assert [(f.fingerprint, f.detected_at) for f in found] == \
        [(e["fingerprint"], e["at"]) for e in fired]
    resolved = {e["fingerprint"]: e for e in edges if e["state"] == "resolved"}
    assert resolved  # the reverted drift resolved
    for finding in found:
        end = resolved.get(finding.fingerprint)
        if end is None:
            assert finding.state == "open" and finding.remediation_age_s is None
            continue
        assert (finding.resolved_by, finding.resolved_at) == ("detector", end["at"])
        assert finding.remediation_age_s == pytest.approx(_at(end["at"]) -
                                                          _at(finding.detected_at))


def test_remediation_age_is_a_histogram_by_kind(replayed: Path) -> None:
    text = (replayed / "metrics.prom").read_text()
    store = FindingsStore(replayed / "findings.sqlite", create=False)
    try:
        ages = [f.remediation_age_s for f in store.list("resolved")
                if f.kind == "equity_drift"]
    finally:
        store.close()
    count = re.search(r'^placewatch_remediation_age_seconds_count\{kind="equity_drift"\} (\S+)$',
                      text, re.M)
    total = re.search(r'^placewatch_remediation_age_seconds_sum\{kind="equity_drift"\} (\S+)$',
                      text, re.M)
    assert count and total and ages
    assert float(count[1]) == len(ages)
    assert float(total[1]) == pytest.approx(sum(a for a in ages if a is not None))


def _alert(state: str, at: str) -> Alert:
    key = ("equity_drift", "team", "a", "preferred_rate")
    return Alert("PlacewatchEquityDrift", state, fingerprint(key), *key, severity="warning",
                 value=0.4, reference=0.6, decision_id="d-1", event_index=1, at=at,
                 summary="team=a drifted.")


def test_a_person_resolves_first_and_the_detector_is_noted_beside(tmp_path: Path) -> None:
    path = tmp_path / "findings.sqlite"
    sink = FindingsSink(path)  # the service's connection
    person = FindingsStore(path, create=False)  # the command's, on the same file
    try:
        sink.write(Batch(0, 1, [], [_alert("firing", "2026-11-02T08:00:00.000Z")], []))
        [finding] = person.list()
        assert person.acknowledge(finding.id, "bob", "on it").state == "acknowledged"
        done = person.resolve(finding.id, "alice", "rolled back")
        assert (done.state, done.resolved_by) == ("resolved", "person:alice")
        assert done.remediation_age_s is not None and done.remediation_age_s >= 0
        with pytest.raises(PlacewatchError, match="already resolved"):
            person.resolve(finding.id, "alice", "again")
        sink.write(Batch(1, 1, [], [_alert("resolved", "2026-11-02T09:00:00.000Z")], []))
        after = person.get(finding.id)
        assert (after.resolved_by, after.detector_resolved_at) == \
            ("person:alice", "2026-11-02T09:00:00.000Z")
        # the next episode of the same alert is a new finding
        sink.write(Batch(2, 1, [], [_alert("firing", "2026-11-02T10:00:00.000Z")], []))
        assert [f.state for f in person.list()] == ["open", "resolved"]
    finally:
        sink.close()
        person.close()


def test_the_command_line_lists_acknowledges_and_resolves(tmp_path: Path) -> None:
    data = tmp_path / "run"
    data.mkdir()
    sink = FindingsSink(data / "findings.sqlite")
    sink.write(Batch(0, 1, [], [_alert("firing", "2026-11-02T08:00:00.000Z")], []))
    sink.close()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "streams.cli", "findings", *args,
                               "--data", str(data)], capture_output=True, text=True,
                              timeout=120)

    listed = cli("list", "--state", "all", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    target = next(r for r in rows if r["state"] == "open")
    assert cli("ack", str(target["id"]), "--by", "bob").returncode == 0
    missing = cli("resolve", str(target["id"]), "--by", "bob")
    assert missing.returncode != 0 and "--note" in missing.stderr
    done = cli("resolve", str(target["id"]), "--by", "bob", "--note", "policy reverted")
    assert done.returncode == 0 and "resolved by bob" in done.stdout
    shown = cli("show", str(target["id"]))
    assert "person:bob: policy reverted" in shown.stdout
    assert cli("show", "99999").returncode == 1


def test_replay_keeps_findings_people_worked_on(tmp_path: Path) -> None:
    data = tmp_path / "run"
    data.mkdir()
    sink = FindingsSink(data / "findings.sqlite")
    sink.write(Batch(0, 1, [], [_alert("firing", "2026-11-02T08:00:00.000Z")], []))
    sink.close()
    store = FindingsStore(data / "findings.sqlite", create=False)
    store.acknowledge(1, "bob", "looking")
    store.close()
    sim = Simulation(SCENARIOS["baseline"], 1000, seed=1)
    with pytest.raises(PlacewatchError, match="people acknowledged or resolved"):
        create_app(load_settings(environ={})).replay((("sim", raw) for raw in sim), data)
    again = FindingsStore(data / "findings.sqlite", create=False)
    try:
        assert again.get(1).acknowledged_by == "bob"
    finally:
        again.close()


def test_a_restart_closes_findings_without_counting_it_as_remediation(tmp_path: Path) -> None:
    sink = FindingsSink(tmp_path / "findings.sqlite")
    try:
        sink.write(Batch(0, 1, [], [_alert("firing", "2026-11-02T08:00:00.000Z")], []))
        closed = _alert("resolved", "2026-11-02T09:00:00.000Z")
        import msgspec

        closed = msgspec.structs.replace(closed, details={"closed_on_restart": True})
        sink.write(Batch(1, 1, [], [closed], []))
        [finding] = sink.store.list()
        assert (finding.resolved_by, finding.remediation_age_s) == ("restart", None)
    finally:
        sink.close()
