"""The Kafka benchmark: events per second through a whole worker, against a bare consumer.

Simulated events are written to the test broker (``streams/bench/kafka_broker.py``, a real
Kafka-protocol server) over ``partitions`` partitions, gzip-compressed and keyed by
``decision_id`` as producers are asked to. Two readers then consume all of them from the start,
each in its own consumer group:

* **bare**: an aiokafka consumer with the same batched ``getmany`` placewatch uses, doing
  nothing with the messages (the ceiling a Python consumer reaches here);
* **placewatch**: :meth:`~streams.app.Placewatch.run_live` on a
  :class:`~streams.app.KafkaRun` — the service as deployed: the event-time sequencer, the
  core, deep audits in their worker process, the run directory fsynced every batch, dead
  letters, alerts and audit records produced to their topics, offsets committed behind them.

A rate is messages over the time from the first message handed on to the last batch done.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

from simulator import SCENARIOS, Simulation
from streams.app import KafkaRun, create_app
from streams.settings import load_settings

__all__ = ["KafkaBench", "kafka_throughput"]

TOPIC = "placewatch.events"


@dataclass(frozen=True, slots=True)
class KafkaBench:
    events: int
    partitions: int
    bare_s: float
    placewatch_s: float
    summary: dict[str, object]

    @property
    def bare_rate(self) -> float:
        return self.events / self.bare_s

    @property
    def placewatch_rate(self) -> float:
        return self.events / self.placewatch_s


def _keyed(lines: list[bytes]) -> list[tuple[bytes | None, bytes]]:
    out = []
    for raw in lines:
        try:
            key = str(orjson.loads(raw)["decision_id"]).encode()
        except (orjson.JSONDecodeError, KeyError, TypeError):
            key = None
        out.append((key, raw))
    return out


async def _bare(bootstrap: str, events: int) -> float:
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id="bench-bare",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        seen = 0
        first: float | None = None
        while seen < events:
            fetched = await consumer.getmany(timeout_ms=200, max_records=2048)
            for messages in fetched.values():
                if messages and first is None:
                    first = time.perf_counter()
                seen += len(messages)
        assert first is not None
        return time.perf_counter() - first
    finally:
        await consumer.stop()


def kafka_throughput(events: int = 100_000, partitions: int = 4, seed: int = 1) -> KafkaBench:
    """Produce ``events`` simulated events, then time the bare consumer and a whole worker."""
    from streams.bench.kafka_broker import MockCluster, produce

    lines = list(Simulation(SCENARIOS["equity_drift"], events, seed))
    cluster = MockCluster()
    try:
        settings = load_settings(environ={}, overrides={"kafka_group_id": "bench-placewatch",
                                                        "metrics_port": 0})
        cluster.create_topic(TOPIC, partitions)
        for name, count, _ in settings.kafka.internal_topics:
            cluster.create_topic(name, count)
        produce(cluster.bootstrap, TOPIC, _keyed(lines))
        bare_s = asyncio.run(_bare(cluster.bootstrap, len(lines)))
        kafka = KafkaRun(settings, cluster.url, stop_when_idle=2.0)
        logging.getLogger("placewatch").setLevel(logging.WARNING)
        try:
            app = create_app(settings, sinks=kafka.sinks)
            app.inputs = kafka.inputs
            with tempfile.TemporaryDirectory(prefix="placewatch-bench-kafka-") as tmp:
                summary = app.run_live(kafka.source, Path(tmp) / "out",
                                       consumer=kafka.source.figures)
            health = app.health
            first = kafka.source.first_message_at
            assert health is not None and health.last_batch_at is not None and first
            placewatch_s = health.last_batch_at - first
        finally:
            kafka.close()
    finally:
        cluster.close()
    if summary["events_in"] != len(lines):
        raise RuntimeError(f"placewatch read {summary['events_in']} of {len(lines)} events")
    return KafkaBench(len(lines), partitions, bare_s, placewatch_s, summary)
