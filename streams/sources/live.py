"""A live source read in a thread of its own, so a batch can close on time.

A live run closes a batch at 512 events or once its first event is
:data:`~streams.app.LIVE_BATCH_SECONDS` old, whichever comes first. Reading the source in the
run's own thread, the second condition could only be checked when the next event arrived: a
slow scheduler's alert would wait for its next decision. :class:`LiveReader` pulls the source
into a bounded queue instead (bounded in events and in bytes, :data:`QUEUE_BYTES`), and
:meth:`LiveReader.batch` waits on the queue with a deadline.
An exception in the source is raised in the caller's thread, at the point of the next batch.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Iterable
from typing import Final

__all__ = ["QUEUE_BYTES", "Event", "LiveReader", "event_bytes"]

Event = tuple[str, bytes] | tuple[str, bytes, int]
"""An input event as a source yields it: ``(source, raw)`` or ``(source, raw, partition)``."""

_END: Final = object()
_POLL_S: Final = 0.25
QUEUE_BYTES: Final = 32 << 20
"""Input bytes read ahead and not yet taken, at most (one item may exceed it alone)."""


def event_bytes(item: object) -> int:
    """The input bytes an event, or a list of them (a fetch), carries."""
    if isinstance(item, list):
        return sum(len(event[1]) for event in item)
    if isinstance(item, tuple):
        return len(item[1])
    return 0


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class LiveReader:
    """Pulls ``events`` into a bounded queue from a daemon thread until it ends or ``stop``
    is set.

    With ``chunked``, ``events`` yields lists of events (a Kafka fetch) and the queue holds
    those lists: one hand-over between the threads per fetch rather than per event, which
    matters because the two threads share one interpreter lock.
    """

    def __init__(self, events: Iterable[Event] | Iterable[list[Event]],
                 stop: threading.Event, capacity: int = 1024, chunked: bool = False,
                 max_bytes: int = QUEUE_BYTES) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(capacity // 256, 4)
                                                       if chunked else capacity)
        self._stop = stop
        self._chunked = chunked
        self._pending: collections.deque[Event] = collections.deque()
        self.ended = False
        self._error: BaseException | None = None
        self._max_bytes = max_bytes
        self._queued_bytes = 0
        self._room = threading.Condition()
        """Guards :attr:`_queued_bytes`; the reader waits on it while the queue is full."""
        self._thread = threading.Thread(target=self._pull, args=(events,), daemon=True,
                                        name="placewatch-source")
        self._thread.start()

    def _pull(self, events: Iterable[Event]) -> None:
        """Read until the source ends or stop is set (checked before every read, so at most
        the queue's worth is read and not processed), then close the source."""
        iterator = iter(events)
        try:
            while not self._stop.is_set():
                try:
                    item = next(iterator)
                except StopIteration:
                    self._put_final(_END)
                    return
                while not self._put(item):
                    if self._stop.is_set():
                        return
        except BaseException as exc:  # handed to the run's thread
            self._put_final(_Failed(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def _put(self, item: object) -> bool:
        size = event_bytes(item)
        with self._room:  # an item alone may exceed the budget, or nothing could be read
            if not self._room.wait_for(
                    lambda: not self._queued_bytes or self._queued_bytes + size <= self._max_bytes,
                    timeout=_POLL_S):
                return False
            self._queued_bytes += size
        try:
            self._queue.put(item, timeout=_POLL_S)
        except queue.Full:
            self._taken(size)
            return False
        return True

    def _taken(self, size: int) -> None:
        with self._room:
            self._queued_bytes -= size
            self._room.notify()

    def _put_final(self, item: object) -> None:
        while not self._put(item):
            if self._stop.is_set():
                return

    def batch(self, into: list[Event], limit: int, seconds: float,
              max_bytes: int = QUEUE_BYTES) -> float | None:
        """Append up to ``limit`` events (of ``max_bytes`` together, the first whatever its
        size), waiting for the first as long as it takes (or until ``stop``), then until
        ``seconds`` after it arrived. Returns the wall-clock time the first arrived, or None
        when the source has ended (or stop was set) with nothing more. A source's error is
        raised once the events read before it have been returned."""
        self._raise_pending()
        first = self._take(None)
        if first is None:
            self._raise_pending()
            return None
        into.append(first)
        size = len(first[1])
        received = time.time()
        deadline = time.monotonic() + seconds
        while len(into) < limit and size < max_bytes and not self._stop.is_set():
            item = self._take(deadline)
            if item is None:
                break
            into.append(item)
            size += len(item[1])
        return received

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _take(self, deadline: float | None) -> Event | None:
        if self._pending:
            return self._pending.popleft()
        while not self.ended:
            wait = _POLL_S if deadline is None else min(_POLL_S, deadline - time.monotonic())
            if wait <= 0:
                return None
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                if deadline is None and self._stop.is_set():
                    return None
                continue
            self._taken(event_bytes(item))
            if item is _END:
                self.ended = True
                return None
            if isinstance(item, _Failed):
                self.ended = True
                self._error = item.exc  # raised at the next batch, after these events
                return None
            if self._chunked:
                assert isinstance(item, list)
                if not item:
                    continue
                self._pending.extend(item)
                return self._pending.popleft()
            assert isinstance(item, tuple)
            return item
        return None
