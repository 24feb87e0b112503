"""``placewatch run --source kafka://`` against a real Kafka-protocol broker (librdkafka's
mock cluster, streams/bench/kafka_broker.py): the same figures as ``replay`` through one
partition and through four, malformed messages dead-lettered to their topic, a commit that
never runs ahead of what is on disk, and a restart that goes on from it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka
import pytest

from streams.audit.store import published_head
from streams.audit.verify import verify_store
from streams.bench.kafka_broker import PRODUCE_API, MockCluster, produce
from tests.helpers import ROOT

pytestmark = pytest.mark.kafka

PLACEWATCH = [sys.executable, "-m", "streams.cli"]
BAD = [
    b"garbage{",
    b"\xff\xfe not utf-8",
    b'{"event_type": "placement", "schema_version": 1}',
    b"",  # a tombstone: no value at all
]


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PLACEWATCH, "--quiet", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


@pytest.fixture
def broker() -> Iterator[MockCluster]:
    cluster = MockCluster()
    out = _cli("kafka", "topics")
    assert out.returncode == 0, out.stderr
    for row in out.stdout.splitlines():
        name, partitions, _ = row.split()
        cluster.create_topic(name, int(partitions))
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """A simulated stream whose drift fires an alert, with malformed messages mixed in."""
    path = tmp_path_factory.mktemp("events") / "events.jsonl"
    done = _cli("simulate", "--scenario", "equity_drift", "--events", "20000", "--seed", "1",
                "--out", str(path))
    assert done.returncode == 0, done.stderr
    lines = path.read_bytes().splitlines()
    for i, bad in enumerate(BAD):
        lines.insert(1000 + 3000 * i, bad)
    return lines


def _key(raw: bytes) -> bytes | None:
    try:
        return str(json.loads(raw)["decision_id"]).encode()
    except (ValueError, KeyError, TypeError):
        return None


def _produce(broker: MockCluster, lines: list[bytes]) -> None:
    """Every line as a message keyed by its decision_id (an empty line as a tombstone)."""
    produce(broker.bootstrap, "placewatch.events",
            ((_key(raw), raw or None) for raw in lines))


def _replay(lines: list[bytes], tmp: Path) -> Path:
    path = tmp / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp / "replay"
    done = _cli("replay", str(path), "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def _run(broker: MockCluster, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    done = _cli("run", "--source", broker.url, "--out", str(out), "--stop-when-idle", "3",
                "--metrics-port", "0", *extra)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _summary(out: Path) -> dict[str, object]:
    summary = json.loads((out / "summary.json").read_text())
    summary.pop("inputs")
    summary.pop("audit_head")  # records name each event's arrival position (event_index)
    return summary


def _alerts(out: Path) -> list[dict[str, object]]:
    alerts = [json.loads(x) for x in (out / "alerts.jsonl").read_text().splitlines()]
    for alert in alerts:
        alert.pop("event_index")  # the position in which this process read the event
    return alerts


def _consume(bootstrap: str, topic: str, count: int, timeout: float = 60
             ) -> list[confluent_kafka.Message]:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap,
                                         "group.id": f"check-{topic}",
                                         "auto.offset.reset": "earliest", "log_level": 3})
    consumer.subscribe([topic])
    got: list[confluent_kafka.Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                got.append(message)
    finally:
        consumer.close()
    return got


@pytest.mark.parametrize("partitions", [1, 4])
def test_kafka_gives_the_figures_replay_gives(broker: MockCluster, events: list[bytes],
                                             tmp_path: Path, partitions: int) -> None:
    broker.create_topic("placewatch.events", partitions)
    _produce(broker, events)
    # a file has no empty events: the tombstone is the one message replay cannot be given
    replayed = _replay([raw for raw in events if raw], tmp_path)
    out = tmp_path / "kafka"
    _run(broker, out)

    summary = _summary(out)
    expected = _summary(replayed)
    expected["events_in"] += 1
    expected["rejected"] += 1
    expected["rejected_by_reason"]["invalid_json"] += 1
    assert summary == expected
    assert summary["events_in"] == len(events)
    assert summary["late_events"] == 0 and summary["reorder_forced"] == 0
    assert summary["alerts"] >= 1, "the drift must fire for the comparison to mean anything"
    assert _alerts(out) == _alerts(replayed)

    # malformed messages: in dead_letter.jsonl with their position, and on the topic
    letters = [json.loads(x) for x in (out / "dead_letter.jsonl").read_text().splitlines()]
    assert len(letters) == len(BAD)
    assert {x["reason"] for x in letters} >= {"invalid_json", "invalid_utf8"}
    assert all(x["source"].startswith("kafka:placewatch.events/") for x in letters)
    published = _consume(broker.bootstrap, "placewatch.dead-letters", len(BAD))
    assert sorted(m.value() or b"" for m in published) == sorted(BAD)
    for message in published:
        headers = dict(message.headers() or [])
        assert headers["placewatch-reason"] in {x["reason"].encode() for x in letters}
        assert headers["placewatch-source"] == message.key()
    alerts = _consume(broker.bootstrap, "placewatch.alerts", int(summary["alerts"]))
    assert [json.loads(m.value())["fingerprint"] for m in alerts] == \
        [a["fingerprint"] for a in _alerts(out)]
    # the audit topic: every record, and the store's checkpoint (here only the closing one),
    # which serves audit verify as a witness of the run directory's store
    published = _consume(broker.bootstrap, "placewatch.audit-records",
                         int(summary["audited"]) + 1)
    kinds = [dict(m.headers() or [])["placewatch-type"] for m in published]
    assert kinds.count(b"record") == summary["audited"] and kinds.count(b"checkpoint") == 1
    witness = [json.loads(m.value()) for m in published
               if dict(m.headers() or [])["placewatch-type"] == b"checkpoint"]
    store = out / "audit.sqlite"
    assert (witness[0]["seq"], witness[0]["hash"]) == published_head(store)
    assert verify_store(store, witness=witness).ok
    assert not verify_store(store, witness=[{**witness[0], "hash": "0" * 64}]).ok


def test_a_restarted_worker_goes_on_from_the_committed_position(broker: MockCluster,
                                                                events: list[bytes],
                                                                tmp_path: Path) -> None:
    """A run that stops after 5,000 events commits exactly those; the next reads the rest."""
    broker.create_topic("placewatch.events", 2)
    _produce(broker, events)
    first, second = tmp_path / "first", tmp_path / "second"
    _run(broker, first, "--max-events", "5000")
    _run(broker, second)
    a = json.loads((first / "summary.json").read_text())
    b = json.loads((second / "summary.json").read_text())
    assert a["events_in"] == 5000
    assert a["events_in"] + b["events_in"] == len(events)
    assert a["rejected"] + b["rejected"] == len(BAD)


def test_sigkill_never_loses_what_was_committed(broker: MockCluster, events: list[bytes],
                                                tmp_path: Path) -> None:
    """Killed without warning mid-stream, a worker has committed only what its files hold:
    every malformed message before the committed position is in its dead_letter.jsonl, and a
    restart reads exactly the messages after it."""
    broker.create_topic("placewatch.events", 1)
    _produce(broker, events)
    first = tmp_path / "first"
    proc = subprocess.Popen([*PLACEWATCH, "--quiet", "run", "--source", broker.url,
                             "--out", str(first), "--metrics-port", "0"], cwd=ROOT,
                            stderr=subprocess.PIPE,
                            env={**os.environ, "PLACEWATCH_AUDIT_WORKER": "inline"})
    try:
        committed = 0
        deadline = time.monotonic() + 120
        while committed < 6000 and time.monotonic() < deadline:
            committed = _committed(broker.bootstrap)
            time.sleep(0.05)
        assert committed >= 6000, "the worker never committed 6,000 messages"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        assert proc.stderr is not None
        proc.stderr.close()
    committed = _committed(broker.bootstrap)
    written = [json.loads(x) for x in (first / "dead_letter.jsonl").read_text().splitlines()]
    offsets = {int(x["source"].rsplit("@", 1)[1]) for x in written}
    before = [i for i, raw in enumerate(events) if raw in BAD and i < committed]
    assert before, "the kill must come after a malformed message"
    assert set(before) <= offsets
    second = tmp_path / "second"
    _run(broker, second)
    b = json.loads((second / "summary.json").read_text())
    assert b["events_in"] == len(events) - committed


def _committed(bootstrap: str, partitions: int = 1) -> int:
    """Messages the group "placewatch" has committed, over the events topic's partitions."""
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap,
                                         "group.id": "placewatch", "log_level": 3})
    try:
        positions = consumer.committed(
            [confluent_kafka.TopicPartition("placewatch.events", p) for p in range(partitions)],
            timeout=10)
        return sum(max(p.offset, 0) for p in positions)
    finally:
        consumer.close()


def test_produce_publishes_the_simulator_keyed_by_decision_id(broker: MockCluster) -> None:
    broker.create_topic("placewatch.events", 2)
    done = _cli("kafka", "produce", "--to", broker.url, "--events", "300",
                "--speedup", "1000000")
    assert done.returncode == 0, done.stderr
    messages = _consume(broker.bootstrap, "placewatch.events", 300)
    assert len(messages) == 300
    for message in messages:
        assert message.key() == json.loads(message.value())["decision_id"].encode()


def test_topics_lists_what_placewatch_writes(tmp_path: Path) -> None:
    config = tmp_path / "placewatch.toml"
    config.write_text('kafka_alerts_topic = "audit.alerts"\n')
    out = _cli("kafka", "topics", "--config", str(config))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["placewatch.dead-letters 1 delete",
                                       "audit.alerts 1 delete",
                                       "placewatch.audit-records 1 delete"]


def test_an_unreachable_broker_is_one_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([*PLACEWATCH, "run", "--source", "kafka://127.0.0.1:1",
                           "--out", str(tmp_path / "out"), "--metrics-port", "0"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert done.returncode == 1
    assert "cannot reach Kafka at 127.0.0.1:1" in done.stderr
    assert "Traceback" not in done.stderr



def test_a_broker_refusing_placewatchs_messages_stops_the_run_with_exit_5(
        broker: MockCluster, events: list[bytes], tmp_path: Path) -> None:
    """Producing the dead letters fails (the broker answers every Produce request with
    TOPIC_AUTHORIZATION_FAILED): an output that cannot be written, one line, exit 5, and no
    position committed past it."""
    broker.create_topic("placewatch.events", 1)
    _produce(broker, events)
    broker.fail_requests(PRODUCE_API, 29, 10_000)  # 29: TOPIC_AUTHORIZATION_FAILED
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([*PLACEWATCH, "run", "--source", broker.url, "--out",
                           str(tmp_path / "out"), "--metrics-port", "0",
                           "--stop-when-idle", "5"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    said = " ".join(done.stderr.split())
    assert done.returncode == 5, done.stderr[-2000:]
    assert "Kafka" in said and "TopicAuthorizationFailed" in said, said[-2000:]
    assert "Traceback" not in done.stderr
