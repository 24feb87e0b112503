"""The event-time sequencer: one order whatever the partitioning, bounded lateness, and what
it does with bad clocks and a full buffer."""

from __future__ import annotations

import datetime as dt
import random
import zlib

import pytest

from detectors.events import Outcome, Placement, decode_event
from detectors.sequencer import EventTimeSequencer
from tests.helpers import line, outcome, placement

START = dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC)  # after the helpers' submitted_at


def _at(seconds: float) -> str:
    return (START + dt.timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _stream(seed: int, n: int, lag: float) -> list[bytes]:
    """Placements in time order (ties included), each outcome arriving up to ``lag`` s after
    its job ended, as a scheduler reports them."""
    rng = random.Random(seed)
    now, pending, out = 0.0, [], []
    for i in range(n):
        now += rng.choice([0.0, 0.5, 1.0, 2.0])
        out.append(line(placement(f"d-{i}", team=rng.choice("abc"), at=_at(now))))
        ended = now + rng.uniform(1, 50)
        pending.append((ended, ended + rng.uniform(0, lag), i))
        for item in [p for p in pending if p[1] <= now]:
            pending.remove(item)
            out.append(line(outcome(f"d-{item[2]}", at=_at(item[0]))))
    for ended, _, i in sorted(pending):
        out.append(line(outcome(f"d-{i}", at=_at(ended))))
    return out


def _order(lines: list[bytes], partitions: int, settle: float, rng: random.Random
           ) -> tuple[list[str], int]:
    """Split by decision_id (keeping each partition's order), interleave at random, and
    return the released order and the late count."""
    seq = EventTimeSequencer(lateness_s=0.0, outcome_settle_s=settle, capacity=100_000)
    queues: list[list[bytes]] = [[] for _ in range(partitions)]
    for raw in lines:
        event = decode_event(raw)
        assert isinstance(event, Placement | Outcome)
        queues[zlib.crc32(event.decision_id.encode()) % partitions].append(raw)
    seq.assign(range(partitions))
    order: list[str] = []
    heads = [0] * partitions
    while any(h < len(q) for h, q in zip(heads, queues, strict=True)):
        p = rng.choice([i for i in range(partitions) if heads[i] < len(queues[i])])
        for _ in range(rng.randint(1, 40)):  # a fetch: a run of one partition's messages
            if heads[p] >= len(queues[p]):
                break
            seq.offer(decode_event(queues[p][heads[p]]), queues[p][heads[p]], p)
            heads[p] += 1
        order.extend(_name(e) for _, e, _ in seq.ready())
    order.extend(_name(e) for _, e, _ in seq.flush())
    return order, seq.late


def _name(event: object) -> str:
    assert isinstance(event, Placement | Outcome)
    kind = "placement" if isinstance(event, Placement) else "outcome"
    return f"{kind}:{event.decision_id}"


@pytest.mark.parametrize("seed", range(5))
def test_partitioning_and_interleaving_do_not_change_the_order(seed: int) -> None:
    lines = _stream(seed, 400, lag=100.0)
    one, late = _order(lines, 1, settle=200.0, rng=random.Random(seed))
    assert late == 0
    for partitions in (2, 4, 8):
        other, late = _order(lines, partitions, settle=200.0, rng=random.Random(seed + 17))
        assert late == 0
        assert other == one, partitions
    assert sorted(one) == sorted(_name(decode_event(raw)) for raw in lines)


def test_outcomes_later_than_the_settle_time_are_late_and_counted() -> None:
    lines = _stream(3, 400, lag=100.0)
    _, late = _order(lines, 4, settle=10.0, rng=random.Random(1))
    assert late > 0


def test_one_bad_clock_at_the_start_of_a_partition_does_not_make_the_rest_late() -> None:
    seq = EventTimeSequencer(0.0, 0.0, 1000, max_clock_jump_s=86400.0)
    bad = line(placement("d-bad", at="2099-01-01T00:00:00Z"))
    seq.offer(decode_event(bad), bad)
    for i in range(50):
        raw = line(placement(f"d-{i}", at=_at(i)))
        seq.offer(decode_event(raw), raw)
    released = [_name(e) for _, e, _ in seq.ready()]
    assert seq.late == 1
    # put right after the first good event (so the core's watermark starts from a good
    # clock), not held until 2099
    assert released[:2] == ["placement:d-0", "placement:d-bad"]
    assert released[2:] == [f"placement:d-{i}" for i in range(1, 49)]


def test_a_full_buffer_releases_the_oldest_without_making_the_rest_late() -> None:
    seq = EventTimeSequencer(0.0, 600.0, capacity=20)
    for i in range(200):  # outcomes wait 600 s; placements do not
        for raw in (line(placement(f"d-{i}", at=_at(i))), line(outcome(f"d-{i}", at=_at(i)))):
            seq.offer(decode_event(raw), raw)
        list(seq.ready())
    assert seq.forced > 0
    assert seq.late == 0
    assert len(seq) <= 21


def test_the_oldest_tag_is_the_first_input_still_held() -> None:
    seq = EventTimeSequencer(0.0, 600.0, capacity=100)
    raws = [line(outcome("d-0", at=_at(0)))] + [line(placement(f"d-{i}", at=_at(i)))
                                                for i in range(1, 6)]
    for raw in raws:
        seq.offer(decode_event(raw), raw)
    released = [tag for tag, _, _ in seq.ready()]
    assert released == [1, 2, 3, 4]  # the outcome (tag 0) waits 600 s, the last placement too
    assert seq.oldest_tag == 0
    assert [tag for tag, _, _ in seq.flush()] == [5, 0]
    assert seq.oldest_tag == seq.offered == 6


def test_a_revoked_partition_holds_nothing_back() -> None:
    """Messages read from a partition just before it was revoked still arrive; they are put
    in order, but the partition, no longer assigned, must not stop every release."""
    seq = EventTimeSequencer(0.0, 0.0, 1000)
    seq.assign([0, 1])
    for i in range(4):
        for p in (0, 1):
            raw = line(placement(f"d-{p}-{i}", at=_at(i)))
            seq.offer(decode_event(raw), raw, p)
    list(seq.ready())
    seq.assign([0])  # partition 1 revoked; two of its messages were already read
    for i in range(4, 6):
        raw = line(placement(f"d-1-{i}", at=_at(i)))
        seq.offer(decode_event(raw), raw, 1)
    for i in range(4, 50):
        raw = line(placement(f"d-0-{i}", at=_at(i)))
        seq.offer(decode_event(raw), raw, 0)
    released = [_name(e) for _, e, _ in seq.ready()]
    assert "placement:d-0-48" in released and "placement:d-1-5" in released


def test_a_bad_clock_second_on_a_partition_goes_right_after_the_first() -> None:
    seq = EventTimeSequencer(1.0, 0.0, 1000, max_clock_jump_s=86400.0)
    seq.assign([0, 1])
    for p, name, at in ((1, "p1-a", _at(0)), (1, "p1-b", _at(1)), (0, "p0-a", _at(10)),
                        (0, "p0-bad", "2099-01-01T00:00:00Z")):
        raw = line(placement(name, at=at))
        seq.offer(decode_event(raw), raw, p)
    for i in range(2, 30):
        for p in (0, 1):
            raw = line(placement(f"p{p}-{i}", at=_at(10 + i)))
            seq.offer(decode_event(raw), raw, p)
    released = [_name(e) for _, e, _ in seq.flush()]
    assert released.index("placement:p0-bad") == released.index("placement:p0-a") + 1
    assert released[:2] == ["placement:p1-a", "placement:p1-b"]
    assert seq.late == 1


def test_an_untrusted_first_time_released_while_quiet_makes_nothing_late() -> None:
    """After a restart the first message has a bad clock and nothing follows for a while:
    the quiet partition lets it go with its own (untrusted) key, which must not make every
    later event late."""
    seq = EventTimeSequencer(0.0, 0.0, 1000, max_clock_jump_s=86400.0)
    seq.assign([0])
    bad = line(placement("d-bad", at="2099-01-01T00:00:00Z"))
    seq.offer(decode_event(bad), bad, 0)
    seq.quiet([0])
    assert [_name(e) for _, e, _ in seq.ready()] == ["placement:d-bad"]
    seq.quiet([])
    for i in range(10):
        raw = line(placement(f"d-{i}", at=_at(i)))
        seq.offer(decode_event(raw), raw, 0)
    assert seq.late == 1  # the bad clock itself, found when d-0 disagreed with it
    assert [_name(e) for _, e, _ in seq.ready()] == [f"placement:d-{i}" for i in range(9)]
