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
it leaves. The assignor prefers the member that held the partitions when a standby joins.

All Kafka I/O runs on one asyncio loop in a thread of its own
(:class:`~streams.kafka_client.KafkaLoop`); the run's thread calls into it and waits with a
deadline.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from aiokafka.errors import KafkaError

from streams.errors import PlacewatchError
from streams.kafka_client import (
    CLOSE_TIMEOUT_S,
    CONNECT_TIMEOUT_S,
    KafkaLoop,
    client_options,
    connect_error,
)
from streams.logs import log_event
from streams.settings import KafkaSettings

__all__ = ["KafkaSource", "SingleOwner"]

_LOG = logging.getLogger("placewatch")
POLL_MS: Final = 200
QUIET_S: Final = 2.0
"""A partition caught up with its log and silent this long no longer holds the others back
(:meth:`KafkaSource.partition_state`)."""
MAX_RECORDS: Final = 2048
"""Messages one ``getmany`` returns at most (aiokafka's batched consumption)."""
OWNER_MARK: Final = b"placewatch-owner"
FINAL_COMMIT_S: Final = 20.0
"""How long a run's last commit keeps trying while the group rebalances."""
LEADER_SYNC_DELAY_S: Final = 0.5
"""How long the group's leader waits before it sends the assignment when the group has more
than one member. librdkafka's mock cluster (the test broker) refuses a follower's SyncGroup
that arrives after the leader's (InvalidRequestError); a real cluster does not, and pays half a
second per rebalance of a group with standbys."""


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
        if len(members) > 1:  # runs on the leader only, before its SyncGroup
            time.sleep(LEADER_SYNC_DELAY_S)
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
        if not cls.owns:
            log_event(_LOG, logging.INFO, "kafka partitions assigned", partitions="-",
                      role="standby")


def _single_owner() -> type[SingleOwner]:
    """A fresh assignor class per consumer (its ownership mark is class state)."""
    return type("SingleOwner", (SingleOwner,), {"owns": False})


class _KeepPosition(ConsumerRebalanceListener):  # type: ignore[misc]
    """After a rebalance, aiokafka resumes every assigned partition from the committed
    position. Placewatch commits behind its sequencer and deep audits, so that would hand the
    same messages to the same core twice; partitions this process keeps are resumed where it
    stopped reading instead (a partition new to it starts from the commit)."""

    def __init__(self, source: KafkaSource, consumer: AIOKafkaConsumer) -> None:
        self._source = source
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        for tp, offset in self._source.read_up_to(assigned).items():
            self._consumer.seek(tp, offset)


class KafkaSource:
    """The events topic as ``(source, raw bytes)`` pairs, in each partition's order.

    ``source`` is ``kafka:TOPIC/PARTITION@OFFSET`` (what a dead letter names). With
    ``stop_when_idle`` the iteration ends once no message has arrived for that many seconds
    after the partitions were assigned and every one of them is caught up with its log; with
    ``max_events``, after that many messages.
    """

    def __init__(self, settings: KafkaSettings, servers: tuple[str, ...], loop: KafkaLoop,
                 stop_when_idle: float | None = None, max_events: int | None = None) -> None:
        self.settings = settings
        self._max_events = max_events
        self.servers = servers
        self._loop = loop
        self._idle = stop_when_idle
        self._lock = threading.Lock()
        self._marks: collections.deque[tuple[TopicPartition, int]] = collections.deque()
        """(partition, offset) of every message handed on and not yet committed, in order."""
        self._handed = 0
        """Messages handed on since start."""
        self._committed_upto = 0
        self._uncommitted: dict[TopicPartition, int] = {}
        """Positions settled but not yet committed (a refused commit is tried again)."""
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
                bootstrap_servers=list(self.servers), group_id=self.settings.group_id,
                client_id="placewatch", enable_auto_commit=False,
                auto_offset_reset="earliest", partition_assignment_strategy=(self.assigner,),
                isolation_level="read_committed", **client_options(self.settings))
            consumer.subscribe([topic], listener=_KeepPosition(self, consumer))
            try:
                await consumer.start()
            except BaseException:
                await consumer.stop()
                raise
            return consumer
        try:
            return self._loop.call(start(), CONNECT_TIMEOUT_S + 5)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise connect_error(self.servers, exc) from exc

    # -- reading ------------------------------------------------------------------------

    def __iter__(self) -> Iterator[tuple[str, bytes, int]]:
        for chunk in self.chunks():
            yield from chunk

    def chunks(self) -> Iterator[list[tuple[str, bytes, int]]]:
        """The messages as lists, one per partition per fetch (what a live run reads: one
        hand-over between threads per list, :class:`~streams.sources.live.LiveReader`)."""
        consumer = self.consumer
        last = time.monotonic()
        assigned_once = False
        topic = self.settings.events_topic
        left = self._max_events
        while left is None or left > 0:
            try:
                fetched, positions = self._loop.call(self._fetch(),
                                                     POLL_MS / 1000 + CONNECT_TIMEOUT_S)
            except (KafkaError, OSError, TimeoutError) as exc:
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
                if left is not None:
                    messages = messages[:left]
                    left -= len(messages)
                if not messages:
                    continue
                with self._lock:
                    for message in messages:
                        self._marks.append((tp, message.offset))
                    self._heard[tp] = now
                self._handed += len(messages)
                prefix = f"kafka:{tp.topic}/{tp.partition}@"
                partition = tp.partition
                yield [(prefix + str(m.offset), m.value if m.value is not None else b"",
                        partition) for m in messages]
            with self._lock:
                caught_up = set()
                for tp in assignment:
                    high = consumer.highwater(tp)
                    if high is not None:
                        self.highwater[tp] = high
                        # the fetch position, not the last message: it steps over the
                        # markers a transactional producer leaves
                        if positions.get(tp, -1) >= high:
                            caught_up.add(tp)
                self._quiet = frozenset(
                    tp.partition for tp in caught_up
                    if now - self._heard.get(tp, self._assigned_at) >= QUIET_S)
            if (self._idle is not None and assigned_once and now - last >= self._idle
                    and caught_up >= set(assignment)):
                log_event(_LOG, logging.INFO, "source idle, stopping", topic=topic,
                          idle_s=self._idle)
                return

    async def _fetch(self) -> tuple[dict[TopicPartition, list[Any]], dict[TopicPartition, int]]:
        """One batched fetch of the assigned partitions, and their fetch positions after it.

        Where reading stopped is recorded before anything else can run on the loop, so a
        rebalance's seek (:class:`_KeepPosition`) never sends this fetch again."""
        consumer = self.consumer
        fetched = await consumer.getmany(timeout_ms=POLL_MS, max_records=MAX_RECORDS)
        owned = consumer.assignment()
        fetched = {tp: messages for tp, messages in fetched.items()
                   if messages and tp in owned}
        with self._lock:
            for tp, messages in fetched.items():
                self._next[tp] = messages[-1].offset + 1
        # brokers away or a partition revoked meanwhile: no position this time (it then
        # counts as not caught up); all asked together, under one short deadline
        partitions = sorted(owned, key=lambda tp: tp.partition)
        positions: dict[TopicPartition, int] = {}
        with contextlib.suppress(TimeoutError):
            answers = await asyncio.wait_for(asyncio.gather(
                *(consumer.position(tp) for tp in partitions), return_exceptions=True), 2.0)
            positions = {tp: answer for tp, answer in zip(partitions, answers, strict=True)
                         if isinstance(answer, int)}
        return fetched, positions

    def _on_assignment(self, assignment: frozenset[TopicPartition]) -> None:
        gained, lost = assignment - self.assigned, self.assigned - assignment
        positions = self._loop.call(self._positions(gained)) if gained else {}
        with self._lock:
            self.assigned = assignment
            self._assigned_at = time.monotonic()
            for tp in lost:
                for table in (self.highwater, self.committed, self._next, self._heard,
                              self._uncommitted):
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

    def commit(self, settled: int, final: bool = False) -> None:
        """Commit the position after the first ``settled`` messages handed on since start
        (their effects are safe).

        A commit refused because the group is rebalancing (a standby joined) is kept and
        tried again with the next one; the ``final`` commit of a run retries for up to
        :data:`FINAL_COMMIT_S` while the consumer rejoins, so a standby taking over starts
        exactly after it."""
        with self._lock:
            take = min(settled, self._handed) - self._committed_upto
            for _ in range(max(take, 0)):
                tp, offset = self._marks.popleft()
                self._uncommitted[tp] = offset + 1
            self._committed_upto += max(take, 0)
        deadline = time.monotonic() + (FINAL_COMMIT_S if final else 0.0)
        while True:
            owned = self.consumer.assignment()
            offsets = {tp: o for tp, o in self._uncommitted.items() if tp in owned}
            if not offsets:
                return
            try:
                self._loop.call(self.consumer.commit(offsets), CLOSE_TIMEOUT_S)
            except (KafkaError, OSError, TimeoutError) as exc:
                if time.monotonic() < deadline:
                    time.sleep(0.25)  # the coordinator rejoins the group meanwhile
                    continue
                # the position stays behind: those messages come again after a restart
                log_event(_LOG, logging.WARNING, "kafka commit failed; the messages after "
                          "the last commit will be read again after a restart", final=final,
                          error=f"{type(exc).__name__}: {exc}")
                return
            with self._lock:
                self.committed.update(offsets)
                for tp in offsets:
                    if self._uncommitted.get(tp) == offsets[tp]:
                        del self._uncommitted[tp]
            return

    def read_up_to(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The offset after the last message handed on, for those of ``partitions`` this
        process has read from."""
        with self._lock:
            return {tp: self._next[tp] for tp in partitions if tp in self._next}

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
            self._loop.call(self.consumer.stop(), CLOSE_TIMEOUT_S)
