"""A live source read in its own thread: a batch closes on time while the source is quiet,
the end and the source's own errors reach the run, and stop is honoured."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from streams.sources.live import LiveReader


def test_a_batch_closes_while_the_source_is_quiet() -> None:
    release = threading.Event()

    def quiet_after_one() -> Iterator[tuple[str, bytes]]:
        yield ("s:0", b"first")
        release.wait(120)          # a scheduler that has nothing to say for a while
        yield ("s:1", b"second")

    stop = threading.Event()
    reader = LiveReader(quiet_after_one(), stop)
    batch: list[tuple[str, bytes]] = []
    got: list[float | None] = []
    worker = threading.Thread(target=lambda: got.append(reader.batch(batch, 512, 0.2)))
    worker.start()
    worker.join(timeout=60)        # returns after ~0.2 s, not when the next event comes
    assert not worker.is_alive() and batch == [("s:0", b"first")] and got[0] is not None
    release.set()
    batch.clear()
    assert reader.batch(batch, 512, 0.2) is not None and batch == [("s:1", b"second")]
    batch.clear()
    assert reader.batch(batch, 512, 0.2) is None and reader.ended and batch == []


def test_the_source_s_error_is_raised_in_the_run() -> None:
    def broken() -> Iterator[tuple[str, bytes]]:
        yield ("s:0", b"x")
        raise OSError("the broker went away")

    reader = LiveReader(broken(), threading.Event())
    batch: list[tuple[str, bytes]] = []
    # the events read before the error come first, then the error
    assert reader.batch(batch, 512, 5.0) is not None and batch == [("s:0", b"x")]
    with pytest.raises(OSError, match="broker went away"):
        reader.batch([], 512, 0.2)


def test_stop_ends_reading_and_closes_the_source() -> None:
    closed = threading.Event()
    pulled = []

    def endless() -> Iterator[tuple[str, bytes]]:
        try:
            i = 0
            while True:
                pulled.append(i)
                yield (f"s:{i}", b"x")
                i += 1
        finally:
            closed.set()

    stop = threading.Event()
    reader = LiveReader(endless(), stop, capacity=16)
    batch: list[tuple[str, bytes]] = []
    assert reader.batch(batch, 8, 5.0) is not None
    stop.set()
    assert closed.wait(60)
    # read ahead of what was processed: at most the queue and the item in hand
    assert len(pulled) <= len(batch) + 16 + 2


def test_stop_ends_a_wait_for_the_first_event() -> None:
    never = threading.Event()

    def silent() -> Iterator[tuple[str, bytes]]:
        never.wait(120)
        yield from ()

    stop = threading.Event()
    reader = LiveReader(silent(), stop)
    got: list[float | None] = [0.0]
    worker = threading.Thread(target=lambda: got.__setitem__(0, reader.batch([], 512, 0.2)))
    worker.start()
    stop.set()
    worker.join(timeout=60)
    never.set()
    assert not worker.is_alive() and got[0] is None
