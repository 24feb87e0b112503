"""The Kafka source: the events topic read by one consumer in a group, committed only behind
durable state.

``placewatch run --source kafka://HOST:PORT[,HOST:PORT]`` consumes the events topic
(``kafka_events_topic``, default ``placewatch.events``: placements and outcomes together,
keyed by ``decision_id``) with aiokafka's batched ``getmany``, and hands each message's raw
bytes to the core, which decodes them like a file's lines. Nothing is committed automatically:
:meth:`KafkaSource.commit` is called by :class:`~streams.sinks.kafka.KafkaOffsets` once every
sink has made a batch's effects safe, and commits exactly the messages whose effects are all
in those batches (deep audits still being explained hold the position back). A crash
re-delivers at most what came after the last commit.

**One judge per group.** Fairness compares groups, so one process must see every partition.
The consumer group's assignment is :class:`SingleOwner`: every partition of the topic goes to
one member, the others wait as hot standbys and take over (from the committed position) when
it leaves. The owner keeps its partitions when a standby joins.

All Kafka I/O runs on one asyncio loop in a thread of its own (:class:`KafkaLoop`); the run's
thread calls into it and waits with a deadline.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Coroutine, Iterable, Iterator, Mapping
from typing import Any, Final, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

from streams.errors import ConfigError, PlacewatchError
from streams.logs import log_event
from streams.settings import KafkaSettings

__all__ = ["KafkaLoop", "KafkaSource", "SingleOwner", "bootstrap_of", "client_options",
           "make_producer"]

_LOG = logging.getLogger("placewatch")
_T = TypeVar("_T")
CONNECT_TIMEOUT_S: Final = 30.0
"""How long start-up waits for the brokers before it gives up with an error."""
POLL_MS: Final = 200
QUIET_S: Final = 2.0
"""A partition caught up with its log and silent this long no longer holds the others back
(:meth:`KafkaSource.partition_state`)."""
MAX_RECORDS: Final = 2048
"""Messages one ``getmany`` returns at most (aiokafka's batched consumption)."""
OWNER_MARK: Final = b"placewatch-owner"


def bootstrap_of(url: str) -> tuple[str, ...]:
    """``kafka://HOST:PORT[,HOST:PORT]`` as a list of bootstrap servers.

    >>> bootstrap_of("kafka://broker-1:9092,broker-2:9092")
    ('broker-1:9092', 'broker-2:9092')
    >>> bootstrap_of("kafka://broker")
    Traceback (most recent call last):
    ...
    streams.errors.ConfigError: --source: 'broker' needs a port (kafka://HOST:PORT[,HOST:PORT])
    """
    if not url.startswith("kafka://"):
        raise ConfigError(f"--source: not a kafka:// URL: {url!r}")
    servers = tuple(s.strip() for s in url[len("kafka://"):].split(",") if s.strip())
    if not servers:
        raise ConfigError("--source: kafka:// needs at least one HOST:PORT")
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"--source: {server!r} needs a port "
                              "(kafka://HOST:PORT[,HOST:PORT])")
    return servers


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Security options shared by the consumer and the producer: TLS always carries an SSL
    context (aiokafka would otherwise send SASL in clear); SASL_PLAINTEXT is refused when the
    settings are read."""
    options: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=settings.ssl_cafile or None, certfile=settings.ssl_certfile or None,
            keyfile=settings.ssl_keyfile or None)
    if settings.security_protocol == "SASL_SSL":
        options.update(sasl_mechanism=settings.sasl_mechanism,
                       sasl_plain_username=settings.sasl_username,
                       sasl_plain_password=settings.sasl_password)
    return options


class KafkaLoop:
    """An asyncio loop in a daemon thread; :meth:`call` runs a coroutine on it and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="placewatch-kafka")
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, _T], timeout: float = CONNECT_TIMEOUT_S) -> _T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


class SingleOwner(AbstractPartitionAssignor):  # type: ignore[misc]
    """Every partition to one member: the one that owned them before if it is still in the
    group, else the first by member id. The others are standbys with nothing assigned."""

    name = "placewatch-single-owner"
    version = 0
    owns = False
    """Whether this process holds the partitions (reported to the group's leader)."""

    @classmethod
    def assign(cls, cluster: Any, members: Mapping[str, ConsumerProtocolMemberMetadata]
               ) -> dict[str, ConsumerProtocolMemberAssignment]:
        owners = sorted(m for m, meta in members.items() if meta.user_data == OWNER_MARK)
        owner = owners[0] if owners else min(members)
        topics = sorted({t for meta in members.values() for t in meta.subscription})
        assigned = []
        for topic in topics:
            partitions = cluster.partitions_for_topic(topic)
            if partitions:
                assigned.append((topic, sorted(partitions)))
        return {member: ConsumerProtocolMemberAssignment(
            cls.version, assigned if member == owner else [], b"") for member in members}

    @classmethod
    def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(cls.version, sorted(topics),
                                              OWNER_MARK if cls.owns else b"")

    @classmethod
    def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
        cls.owns = bool(assignment.assignment)


def _single_owner() -> type[SingleOwner]:
    """A fresh assignor class per consumer (its ownership mark is class state)."""
    return type("SingleOwner", (SingleOwner,), {"owns": False})


def _unreachable(servers: tuple[str, ...], exc: BaseException) -> PlacewatchError:
    return PlacewatchError(f"cannot reach Kafka at {','.join(servers)}: "
                           f"{type(exc).__name__}: {exc}; check --source, the listeners the "
                           "brokers advertise and the kafka_security_protocol setting")


def make_producer(settings: KafkaSettings, servers: tuple[str, ...], loop: KafkaLoop
                  ) -> AIOKafkaProducer:
    """A started producer that waits for every in-sync replica and never duplicates on a
    retry (idempotent)."""
    async def start() -> AIOKafkaProducer:
        producer = AIOKafkaProducer(bootstrap_servers=list(servers), acks="all",
                                    enable_idempotence=True, linger_ms=5,
                                    client_id="placewatch", **client_options(settings))
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer
    try:
        return loop.call(start(), CONNECT_TIMEOUT_S + 5)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise _unreachable(servers, exc) from exc


class KafkaSource:
    """The events topic as ``(source, raw bytes)`` pairs, in each partition's order.

    ``source`` is ``kafka:TOPIC/PARTITION@OFFSET`` (what a dead letter names). With
    ``stop_when_idle`` the iteration ends once no message has arrived for that many seconds
    after the partitions were assigned.
    """

    def __init__(self, settings: KafkaSettings, servers: tuple[str, ...], loop: KafkaLoop,
                 stop_when_idle: float | None = None) -> None:
        self.settings = settings
        self.servers = servers
        self._loop = loop
        self._idle = stop_when_idle
        self._lock = threading.Lock()
        self._marks: collections.deque[tuple[TopicPartition, int]] = collections.deque()
        """(partition, offset) of every message handed on and not yet committed, in order."""
        self._handed = 0
        """Messages handed on since start."""
        self._committed_upto = 0
        self.committed: dict[TopicPartition, int] = {}
        """Next offset to read after a restart, per partition (what was last committed)."""
        self.highwater: dict[TopicPartition, int] = {}
        self.assigned: frozenset[TopicPartition] = frozenset()
        self.assigner = _single_owner()
        self._next: dict[TopicPartition, int] = {}
        """The offset after the last message handed on, per partition."""
        self._heard: dict[TopicPartition, float] = {}
        """When each partition last gave a message (monotonic seconds)."""
        self._assigned_at = time.monotonic()
        self._quiet: frozenset[int] = frozenset()
        self.first_message_at: float | None = None
        """Wall-clock time the first message was handed on (Unix seconds)."""
        self.consumer = self._start()

    def _start(self) -> AIOKafkaConsumer:
        topic = self.settings.events_topic

        async def start() -> AIOKafkaConsumer:
            consumer = AIOKafkaConsumer(
                topic, bootstrap_servers=list(self.servers), group_id=self.settings.group_id,
                client_id="placewatch", enable_auto_commit=False,
                auto_offset_reset="earliest", partition_assignment_strategy=(self.assigner,),
                isolation_level="read_committed", **client_options(self.settings))
            try:
                await consumer.start()
            except BaseException:
                await consumer.stop()
                raise
            return consumer
        try:
            return self._loop.call(start(), CONNECT_TIMEOUT_S + 5)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise _unreachable(self.servers, exc) from exc

    # -- reading ------------------------------------------------------------------------

    def __iter__(self) -> Iterator[tuple[str, bytes, int]]:
        consumer = self.consumer
        last = time.monotonic()
        assigned_once = False
        topic = self.settings.events_topic
        while True:
            try:
                fetched = self._loop.call(consumer.getmany(timeout_ms=POLL_MS,
                                                           max_records=MAX_RECORDS),
                                          POLL_MS / 1000 + CONNECT_TIMEOUT_S)
            except (KafkaError, OSError) as exc:
                raise PlacewatchError(f"reading {topic} from Kafka failed: "
                                      f"{type(exc).__name__}: {exc}") from exc
            now = time.monotonic()
            assignment = consumer.assignment()
            if assignment != self.assigned:
                self._on_assignment(frozenset(assignment))
            if assignment and not assigned_once:
                assigned_once, last = True, now
            if fetched:
                last = now
                if self.first_message_at is None:
                    self.first_message_at = time.time()
            for tp in sorted(fetched, key=lambda tp: tp.partition):
                messages = fetched[tp]
                with self._lock:
                    for message in messages:
                        self._marks.append((tp, message.offset))
                    self._next[tp] = messages[-1].offset + 1
                    self._heard[tp] = now
                self._handed += len(messages)
                for message in messages:
                    yield (f"kafka:{tp.topic}/{tp.partition}@{message.offset}",
                           message.value if message.value is not None else b"",
                           tp.partition)
            with self._lock:
                for tp in assignment:
                    high = consumer.highwater(tp)
                    if high is not None:
                        self.highwater[tp] = high
                self._quiet = frozenset(
                    tp.partition for tp in assignment
                    if self.highwater.get(tp) is not None
                    and self._next.get(tp, 0) >= self.highwater[tp]
                    and now - self._heard.get(tp, self._assigned_at) >= QUIET_S)
            if self._idle is not None and assigned_once and now - last >= self._idle:
                log_event(_LOG, logging.INFO, "source idle, stopping", topic=topic,
                          idle_s=self._idle)
                return

    def _on_assignment(self, assignment: frozenset[TopicPartition]) -> None:
        gained, lost = assignment - self.assigned, self.assigned - assignment
        positions = self._loop.call(self._positions(gained)) if gained else {}
        with self._lock:
            self.assigned = assignment
            self._assigned_at = time.monotonic()
            for tp in lost:
                for table in (self.highwater, self.committed, self._next, self._heard):
                    table.pop(tp, None)
            self.committed.update(positions)
            self._next.update(positions)
        if gained or lost:
            log_event(_LOG, logging.INFO, "kafka partitions assigned",
                      topic=self.settings.events_topic,
                      partitions=",".join(str(tp.partition) for tp in
                                          sorted(assignment, key=lambda t: t.partition)) or "-",
                      role="owner" if assignment else "standby")

    async def _positions(self, partitions: frozenset[TopicPartition]
                         ) -> dict[TopicPartition, int]:
        """Where the group's committed position is for each partition (the log's start when
        nothing was committed yet)."""
        out = {}
        starts = await self.consumer.beginning_offsets(list(partitions))
        for tp in partitions:
            committed = await self.consumer.committed(tp)
            out[tp] = committed if committed is not None else starts.get(tp, 0)
        return out

    # -- committing ---------------------------------------------------------------------

    def commit(self, settled: int) -> None:
        """Commit the position after the first ``settled`` messages handed on since start
        (their effects are safe)."""
        offsets: dict[TopicPartition, int] = {}
        with self._lock:
            take = min(settled, self._handed) - self._committed_upto
            for _ in range(max(take, 0)):
                tp, offset = self._marks.popleft()
                offsets[tp] = offset + 1
            self._committed_upto += max(take, 0)
        offsets = {tp: o for tp, o in offsets.items() if tp in self.assigned}
        if not offsets:
            return
        try:
            self._loop.call(self.consumer.commit(offsets))
        except (KafkaError, OSError, TimeoutError) as exc:
            # the position stays behind: those messages come again after a restart
            log_event(_LOG, logging.WARNING, "kafka commit failed; the messages after the "
                      "last commit will be read again after a restart",
                      error=f"{type(exc).__name__}: {exc}")
            return
        with self._lock:
            self.committed.update(offsets)

    def partition_state(self) -> tuple[frozenset[int], frozenset[int]]:
        """The assigned partitions of the events topic, and those caught up with their log
        and silent for :data:`QUIET_S` (the core's sequencer does not wait for those)."""
        with self._lock:
            return frozenset(tp.partition for tp in self.assigned), self._quiet

    def figures(self) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
        """Per assigned (topic, partition): the lag (the log end minus the committed position:
        what a restart would read again or for the first time) and the committed position."""
        with self._lock:
            lag = {(tp.topic, tp.partition): max(high - self.committed.get(tp, 0), 0)
                   for tp, high in self.highwater.items() if tp in self.assigned}
            committed = {(tp.topic, tp.partition): offset
                         for tp, offset in self.committed.items() if tp in self.assigned}
        return lag, committed

    def close(self) -> None:
        with contextlib.suppress(KafkaError, OSError, TimeoutError):
            self._loop.call(self.consumer.stop(), 15)
