"""Both edges of every alert reach every sink: a shift that starts and later reverts fires and
then resolves, an override that is finally lifted resolves, and fired − resolved = open."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from detectors.config import CoreConfig
from detectors.registry import ALERT_KINDS
from simulator import SCENARIOS, Simulation
from streams.app import create_app
from streams.settings import Settings, load_settings
from streams.sinks.base import Batch, Sink

EVENTS = 100_000
REVERT = 60_000


class RecordingSink:
    """A sink written here (not a mock): keeps every batch and the order of calls, and reads
    the open-alert gauge through the registry's public API after every batch."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.batches: list[Batch] = []
        self.open_after_batch: list[float] = []
        self.registry: Any = None

    def write(self, batch: Batch) -> None:
        self.calls.append("write")
        self.batches.append(batch)

    def durable(self) -> None:
        self.calls.append("durable")
        total = 0.0
        for kind in ALERT_KINDS:
            total += self.registry.get_sample_value("placewatch_alerts_open",
                                                    {"kind": kind}) or 0.0
        self.open_after_batch.append(total)

    def close(self) -> None:
        self.calls.append("close")


def _replay(tmp_path: Path, scenario: str, revert_at: int | None, **config: Any
            ) -> tuple[dict[str, Any], list[dict[str, Any]], RecordingSink, Path]:
    sim = Simulation(SCENARIOS[scenario], EVENTS, seed=3, revert_at=revert_at)
    sink = RecordingSink()
    assert isinstance(sink, Sink)
    app = create_app(load_settings(environ={}, overrides=config), sinks=[sink])
    sink.registry = app.registry
    out = tmp_path / scenario
    summary = app.replay((("sim", raw) for raw in sim), out)
    alerts = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    return summary, alerts, sink, out


def _check_edges(alerts: list[dict[str, Any]], summary: dict[str, Any], out: Path) -> None:
    """Every resolved edge follows a firing edge of the same fingerprint, no alert fires twice
    while open, and fired − resolved = open per kind in the summary and the metrics."""
    open_now: dict[str, dict[str, Any]] = {}
    fired: Counter[str] = Counter()
    resolved: Counter[str] = Counter()
    for alert in alerts:
        fp = alert["fingerprint"]
        if alert["state"] == "firing":
            assert fp not in open_now, alert
            open_now[fp] = alert
            fired[alert["kind"]] += 1
        else:
            assert alert["state"] == "resolved"
            first = open_now.pop(fp)
            for key in ("alert", "kind", "attribute", "group", "metric", "severity"):
                assert alert[key] == first[key]
            assert alert["event_index"] >= first["event_index"]
            assert alert["details"]["fired_event_index"] == first["event_index"]
            assert alert["details"]["open_seconds"] >= 0
            resolved[alert["kind"]] += 1
    assert summary["alerts"] == sum(fired.values())
    assert summary["alerts_resolved"] == sum(resolved.values())
    assert summary["alerts_open"] == len(open_now)
    metrics = (out / "metrics.prom").read_text()
    for kind in ALERT_KINDS:
        assert f'placewatch_alerts_open{{kind="{kind}"}} {float(fired[kind] - resolved[kind])}' \
            in metrics, kind
        assert f'placewatch_alerts_resolved_total{{kind="{kind}"}} {float(resolved[kind])}' \
            in metrics, kind
    active = [line for line in metrics.splitlines() if line.startswith("placewatch_alert_active{")]
    assert len(active) == len(open_now)
    for fp in open_now:
        assert sum(f'fingerprint="{fp}"' in line for line in active) == 1


@pytest.fixture(scope="module")
def drift_then_revert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, ...]:
    return _replay(tmp_path_factory.mktemp("drift"), "equity_drift", REVERT)


def test_a_reverted_equity_drift_fires_then_resolves(drift_then_revert: tuple[Any, ...]) -> None:
    summary, alerts, _, out = drift_then_revert
    target = [a for a in alerts if a["kind"] == "equity_drift" and a["group"] == "genomics"
              and a["metric"] == "preferred_rate"]
    assert [a["state"] for a in target] == ["firing", "resolved"]
    firing, resolved = target
    assert firing["fingerprint"] == resolved["fingerprint"]
    assert 0.4 * EVENTS <= firing["event_index"] < REVERT <= resolved["event_index"]
    assert resolved["value"] > firing["value"]  # the share came back up
    assert resolved["summary"].startswith("Resolved after ")
    _check_edges(alerts, summary, out)


def test_a_plugged_in_sink_receives_every_effect_with_durable_after_each_batch(
        drift_then_revert: tuple[Any, ...]) -> None:
    summary, alerts, sink, out = drift_then_revert
    # write, durable per batch, then close once
    assert sink.calls[-1] == "close" and sink.calls.count("close") == 1
    assert sink.calls[:-1] == ["write", "durable"] * len(sink.batches)
    assert sink.batches[-1].final and not any(b.final for b in sink.batches[:-1])
    assert sum(b.events for b in sink.batches) == summary["events_in"] == EVENTS
    starts = [b.first_event for b in sink.batches if b.events]
    assert starts == sorted(starts) and starts[0] == 0
    # the same edges as alerts.jsonl, the same dead letters, every audit record
    edges = [a for b in sink.batches for a in b.alerts]
    assert [(a.state, a.fingerprint, a.event_index) for a in edges] == \
        [(a["state"], a["fingerprint"], a["event_index"]) for a in alerts]
    letters = (out / "dead_letter.jsonl").read_text().splitlines()
    assert sum(len(b.dead_letters) for b in sink.batches) == len(letters) == summary["rejected"]
    records = [r for b in sink.batches for r in b.audit_records]
    assert len(records) == summary["audited"] == summary["audit_head"]["records"]
    # placewatch_alerts_open rose while the drift held and fell when it resolved
    peak = max(sink.open_after_batch)
    assert peak >= 1 and sink.open_after_batch[-1] < peak
    assert sink.open_after_batch[-1] == summary["alerts_open"]


def test_a_lifted_override_resolves_its_alert(tmp_path: Path) -> None:
    summary, alerts, _, out = _replay(tmp_path, "override_leak", REVERT,
                                      audit_sample_rate=0.0, shadow_train_rate=0.0)
    pins = {a["fingerprint"] for a in alerts if a["kind"] == "override_expired"
            and a["details"].get("override_reason") == "capacity pin: genomics"}
    assert len(pins) == 1
    leak = [a for a in alerts if a["fingerprint"] in pins]
    assert [a["state"] for a in leak] == ["firing", "resolved"]
    firing, resolved = leak
    assert firing["fingerprint"] == resolved["fingerprint"]
    assert resolved["event_index"] >= REVERT
    assert resolved["details"]["open_seconds"] > 3600
    assert "taken as lifted" in resolved["summary"]
    _check_edges(alerts, summary, out)


@pytest.mark.parametrize("scenario", ["forecast_bias", "feedback_loop", "preemption_concentration"])
def test_fired_minus_resolved_is_open_for_every_kind(tmp_path: Path, scenario: str) -> None:
    summary, alerts, _, out = _replay(tmp_path, scenario, REVERT, audit_sample_rate=0.0,
                                      shadow_train_rate=0.0)
    assert any(a["state"] == "resolved" for a in alerts), scenario
    _check_edges(alerts, summary, out)


def test_an_interrupt_mid_batch_hands_on_only_the_events_processed(tmp_path: Path) -> None:
    """A second Ctrl-C inside a batch: the last batch the sinks get covers exactly the events
    the core took, and its commit point never passes input whose effects it does not hold."""
    sink = RecordingSink()
    app = create_app(Settings(core=CoreConfig().without_audits()), sinks=[sink])
    sink.registry = app.registry
    offer = app.core.offer

    def interrupted(raw: bytes, partition: int = 0, source: str = "") -> None:
        if app.core.sequencer.offered == 700:
            raise KeyboardInterrupt
        offer(raw, partition, source)

    app.core.offer = interrupted  # type: ignore[method-assign]
    events = (("sim", raw) for raw in Simulation(SCENARIOS["baseline"], 2000, seed=1))
    with pytest.raises(KeyboardInterrupt):
        app.replay(events, tmp_path / "out")
    assert [b.events for b in sink.batches] == [512, 188]
    assert app.core.sequencer.offered == 700
    last = sink.batches[-1]
    # the commit point does not move past where the interrupted batch began: an event may
    # have been taken from the sequencer and not applied
    assert last.settled_events == sink.batches[0].settled_events
    assert last.settled_events is not None
    assert last.settled_events <= app.core.sequencer.oldest_tag <= 700


def test_the_commit_point_never_passes_an_effect_not_yet_handed_on(tmp_path: Path) -> None:
    """``settled_events`` is what a Kafka commit follows. With deep audits in their worker
    process and outcomes waiting in the sequencer, every batch's commit point must stay
    behind every audit record not yet handed to the sinks, and the run's last batch must
    settle everything."""
    sink = RecordingSink()
    app = create_app(load_settings(environ={}, overrides={"audit_worker": "process",
                                                          "audit_sample_rate": 0.1}),
                     sinks=[sink])
    sink.registry = app.registry
    events = [("sim", raw) for raw in Simulation(SCENARIOS["baseline"], 12_000, seed=2)]
    app.replay(events, tmp_path / "out")
    seen: set[int] = set()
    held_back = 0
    arrived = 0
    all_indexes = set()
    for batch in sink.batches:
        for _, _, body in batch.audit_records:
            all_indexes.add(json.loads(body)["event_index"])
    assert len(all_indexes) > 500
    for batch in sink.batches:
        arrived += batch.events
        for _, _, body in batch.audit_records:
            seen.add(json.loads(body)["event_index"])
        assert batch.settled_events is not None and batch.settled_events <= arrived
        missing = {i for i in all_indexes if i < batch.settled_events} - seen
        assert not missing, (batch.settled_events, sorted(missing)[:5])
        held_back += batch.settled_events < arrived
    assert held_back > len(sink.batches) // 2  # the check has something to hold back
    assert sink.batches[-1].final and sink.batches[-1].settled_events == len(events)
