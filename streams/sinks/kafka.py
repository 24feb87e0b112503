"""Kafka sinks: effects to topics, and the consumer's commit once a batch is safe.

:class:`KafkaEffects` produces each batch's dead letters, alert edges and audit records to their
topics (``kafka_dead_letter_topic``, ``kafka_alerts_topic``, ``kafka_audit_topic``; ``placewatch
kafka topics`` lists them) with an idempotent producer that waits for every in-sync replica;
its :meth:`~KafkaEffects.durable` returns once the brokers have acknowledged all of them.

- A dead letter's value is the original message's bytes, its key the message's position
  (``kafka:TOPIC/PARTITION@OFFSET``), and its headers ``placewatch-reason``,
  ``placewatch-detail`` and ``placewatch-source``.
- An alert edge's value is its ``alerts.jsonl`` line, keyed by its fingerprint.
- An audit record's value is its canonical JSON, keyed by its ``decision_id``, with the header
  ``placewatch-type: record``; each checkpoint of the store goes to the same topic, keyed
  ``checkpoint:STORE_ID:SEQ`` with ``placewatch-type: checkpoint``
  (:meth:`KafkaEffects.publish_checkpoints`).

:class:`KafkaOffsets` goes last among a run's sinks: its ``durable()`` commits the consumer's
position once every sink before it has made the batch safe (at most once a second, and at the
closing batch). Effects are delivered at least
once: after a crash, what came after the last commit is read and written again (alert edges
keep their fingerprint, audit records their ``decision_id``, dead letters their position, so
a consumer of these topics can drop repeats).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from streams.errors import OutputError
from streams.kafka_client import CLOSE_TIMEOUT_S, CONNECT_TIMEOUT_S, KafkaLoop
from streams.settings import KafkaSettings
from streams.sinks.base import Batch
from streams.sinks.files import alert_line
from streams.sources.kafka import KafkaSource

__all__ = ["COMMIT_INTERVAL_S", "KafkaEffects", "KafkaOffsets"]

_DETAIL_BYTES = 1000


class KafkaEffects:
    """Dead letters, alert edges and audit records to their topics."""

    name = "kafka-topics"

    def __init__(self, producer: AIOKafkaProducer, settings: KafkaSettings,
                 loop: KafkaLoop) -> None:
        self._producer = producer
        self._settings = settings
        self._loop = loop
        self._sent: list[asyncio.Future[Any]] = []
        self.produced = 0

    async def _send(self, messages: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]]
                    ) -> list[asyncio.Future[Any]]:
        futures = []
        for topic, key, value, headers in messages:
            futures.append(await self._producer.send(topic, value, key=key,
                                                     headers=headers or None))
        return futures

    def write(self, batch: Batch) -> None:
        s = self._settings
        messages: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]] = []
        for letter, source in batch.dead_letters:
            messages.append((s.dead_letter_topic, source.encode(), letter.raw, [
                ("placewatch-reason", letter.reason.encode()),
                ("placewatch-detail", letter.detail.encode()[:_DETAIL_BYTES]),
                ("placewatch-source", source.encode())]))
        for alert in batch.alerts:
            messages.append((s.alerts_topic, alert.fingerprint.encode(),
                             alert_line(alert).rstrip(b"\n"), []))
        for decision_id, _, body in batch.audit_records:
            messages.append((s.audit_topic, decision_id.encode(), body,
                             [("placewatch-type", b"record")]))
        self._produce(messages)

    def _produce(self, messages: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]]
                 ) -> None:
        if not messages:
            return
        try:
            self._sent.extend(self._loop.call(self._send(messages), CONNECT_TIMEOUT_S))
        except (KafkaError, OSError, TimeoutError) as exc:
            raise OutputError(f"producing to Kafka failed: {type(exc).__name__}: {exc}"
                              ) from exc
        self.produced += len(messages)

    def publish_checkpoints(self, lines: list[dict[str, Any]]) -> None:
        """Each audit checkpoint to the audit topic: its value the witness line (``audit
        verify --witness`` reads a file of them), its key ``checkpoint:STORE_ID:SEQ``, its
        header ``placewatch-type: checkpoint``."""
        self._produce([(self._settings.audit_topic,
                        f"checkpoint:{line['store_id']}:{line['seq']}".encode(),
                        orjson.dumps(line), [("placewatch-type", b"checkpoint")])
                       for line in lines])

    def durable(self) -> None:
        if not self._sent:
            return
        sent, self._sent = self._sent, []

        async def acknowledged() -> None:
            await asyncio.gather(*sent)
        try:
            self._loop.call(acknowledged(), CONNECT_TIMEOUT_S)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise OutputError("Kafka did not acknowledge placewatch's messages: "
                              f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        with contextlib.suppress(KafkaError, OSError, TimeoutError):
            self._loop.call(self._producer.stop(), CLOSE_TIMEOUT_S)


COMMIT_INTERVAL_S = 1.0
"""Seconds between two commits of the consumer's position (and at the closing batch): a
commit is a round trip to the group coordinator, and more of them would only shorten what a
crash makes the next run read again."""


class KafkaOffsets:
    """Commits the source's position behind what every earlier sink has made safe, at most
    every :data:`COMMIT_INTERVAL_S` and at the end."""

    name = "kafka-offsets"

    def __init__(self, source: KafkaSource) -> None:
        self._source = source
        self._settled = 0
        self._final = False
        self._last = -math.inf

    def write(self, batch: Batch) -> None:
        settled = batch.settled_events
        self._settled = batch.first_event + batch.events if settled is None else settled
        self._final = batch.final

    def durable(self) -> None:
        now = time.monotonic()
        if self._final or now - self._last >= COMMIT_INTERVAL_S:
            self._source.commit(self._settled, final=self._final)
            self._last = now

    def close(self) -> None:
        self._source.close()
