"""Scheduling equity on synthetic waits: what it must find (a group waiting past the limit
against its class, with confidence), what it must not (a burst that slows the whole class, a
gap under the limit however well supported, a class whose waits are mostly zero, another
class's waits), its running window against an exact recomputation, and the requeue wait of
a preempted job."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from detectors.alerts import AlertBook, Where
from detectors.config import CoreConfig
from detectors.detector import Fire, Resolve
from detectors.groups import OVERFLOW_GROUP
from detectors.kinds.scheduling_equity import SchedulingEquityDetector
from detectors.pipeline import AuditCore
from detectors.requeue import RequeueClock
from detectors.wait_equity import MIN_BATCHES, WaitEquity, WaitGap
from streams.settings import ConfigError, load_settings
from tests.helpers import line, placement

GROUPS = ("a", "b", "c", "d", "e")
BATCH: tuple[int, str] = (1, "batch")


def _tracker(**kw: object) -> WaitEquity:
    args: dict[str, object] = {"limits": {}, "default_limit": 0.12, "confidence": 0.95,
                               "min_support": 30, "window": 100}
    args.update(kw)
    return WaitEquity(**args)  # type: ignore[arg-type]


def _run(tracker: WaitEquity, batches: int, factor: dict[str, float], *, seed: int = 1,
         burst: float = 0.0, zero_share: float = 0.3, per_group: int = 12,
         change: tuple[int, int] = (0, 10**9)) -> list[list[WaitGap]]:
    """Lognormal waits (median 10 min, log-spread 1.2), ``zero_share`` of them zero; group g's
    waits are multiplied by ``factor[g]`` in batches ``change[0] <= b < change[1]``; ``burst``
    is the log-spread of a factor that multiplies every wait of a batch alike (a class-wide
    crunch). Answers every evaluation's comparisons."""
    rng = np.random.default_rng(seed)
    out = []
    for b in range(batches):
        crunch = math.exp(rng.normal(0, burst)) if burst else 1.0
        for g in GROUPS:
            scale = factor.get(g, 1.0) if change[0] <= b < change[1] else 1.0
            for _ in range(per_group):
                wait = 0.0 if rng.random() < zero_share else \
                    600 * math.exp(rng.normal(0, 1.2)) * crunch * scale
                tracker.add("team", g, BATCH, wait)
        tracker.close_batch()
        out.append(tracker.evaluate())
    return out


def _found(evaluations: list[list[WaitGap]]) -> set[str]:
    return {g.group for gaps in evaluations for g in gaps if g.significant}


def test_a_group_waiting_longer_than_its_class_is_found_and_named() -> None:
    evaluations = _run(_tracker(), 120, {"b": 1.6})
    assert _found(evaluations) == {"b"}
    last = {g.group: g for g in evaluations[-1]}["b"]
    assert 0.4 < last.gap < 0.9 and last.lower > 0.12
    assert last.batches == 100  # the window, not the whole run


@pytest.mark.parametrize("seed", range(4))
def test_a_burst_that_slows_the_whole_class_is_not_a_finding(seed: int) -> None:
    """Waits x e^N(0, 1.5) per batch, for every group alike: the paired batch errors keep it
    from looking like evidence."""
    assert _found(_run(_tracker(), 150, {}, burst=1.5, seed=seed)) == set()


def test_a_group_busy_when_everyone_waits_is_not_waiting_longer() -> None:
    """Group b sends its jobs in the busy hours (every tenth batch, when every job of the
    class waits 20 times as long): its mean wait is several times the rest's, but its jobs
    wait like the others placed at the same time, so the time-matched gap is about zero."""
    tracker = _tracker()
    rng = np.random.default_rng(5)
    for b in range(120):
        busy = b % 10 == 0
        for g in GROUPS:
            count = (40 if busy else 1) if g == "b" else 12
            for _ in range(count):
                tracker.add("team", g, BATCH, 600 * math.exp(rng.normal(0, 1.0))
                            * (20 if busy else 1))
        tracker.close_batch()
    gap = {g.group: g for g in tracker.evaluate()}["b"]
    assert gap.mean_wait_s > 3 * gap.rest_wait_s
    assert abs(gap.gap) < 0.12 and not gap.significant


def test_a_gap_under_the_limit_is_never_a_finding_however_well_supported() -> None:
    evaluations = _run(_tracker(window=400), 400, {"b": 1.06}, per_group=60)
    assert _found(evaluations) == set()
    assert {g.group: g for g in evaluations[-1]}["b"].gap == pytest.approx(0.06, abs=0.05)


def test_a_per_attribute_limit_applies_to_its_attribute_only() -> None:
    assert _found(_run(_tracker(limits={"team": 0.9}), 120, {"b": 1.6})) == set()
    assert _found(_run(_tracker(limits={"region": 0.9}), 120, {"b": 1.6})) == {"b"}


def test_a_class_whose_waits_are_mostly_zero_needs_enough_waited_jobs() -> None:
    """99% zero waits: too few waited jobs in the window to compare, whatever the gap."""
    evaluations = _run(_tracker(), 120, {"b": 5.0}, zero_share=0.99)
    assert evaluations[-1] == []


def test_the_gap_is_measured_within_the_class() -> None:
    """Group b's jobs are all in a slow class, the others' in a fast one: no gap within
    either class, so nothing is found, however different their overall means."""
    tracker = _tracker()
    rng = np.random.default_rng(3)
    for _ in range(60):
        for g in GROUPS:
            cls = (1, "training") if g in ("b", "c") else BATCH
            for _ in range(12):
                tracker.add("team", g, cls, 60 * rng.exponential(100 if cls != BATCH else 5))
        tracker.close_batch()
    assert [g for g in tracker.evaluate() if g.significant] == []


def test_the_finding_leaves_the_window_after_the_change_reverts() -> None:
    evaluations = _run(_tracker(window=60), 260, {"b": 1.8}, change=(0, 100))
    gaps = [{g.group: g for g in gaps}.get("b") for gaps in evaluations]
    assert any(g is not None and g.significant for g in gaps[:100])
    assert all(g is not None and g.gap <= 0.12 and not g.significant for g in gaps[-40:])


def test_the_overflow_group_is_only_ever_part_of_the_rest() -> None:
    tracker = _tracker()
    for b in range(40):
        for g, wait in (("a", 100.0), ("b", 110.0), (OVERFLOW_GROUP, 900.0)):
            for i in range(20):
                tracker.add("team", g, BATCH, wait + (b * i) % 9)
        tracker.close_batch()
    names = {g.group for g in tracker.evaluate(frozenset({OVERFLOW_GROUP}))}
    assert names == {"a", "b"}


@pytest.mark.parametrize("seed", range(3))
def test_the_running_window_sums_equal_an_exact_recount(seed: int) -> None:
    """Groups joining late, leaving and coming back, batches where the class is silent, a
    window far shorter than the run: the running sums are what a recount from the window's
    batches gives."""
    tracker = _tracker(window=MIN_BATCHES + 3)
    rng = np.random.default_rng(seed)
    for b in range(70):
        for g in GROUPS[: 2 + (b // 10) % 4]:
            if rng.random() < 0.7:
                for _ in range(int(rng.integers(1, 6))):
                    tracker.add("team", g, BATCH, float(rng.exponential(300)))
        tracker.close_batch()
        cell = tracker.cells[("team", BATCH)]
        running = {g: list(s) for g, s in cell.sums.items()}
        WaitEquity._resync(cell)
        for g, s in cell.sums.items():
            assert running[g] == pytest.approx(s, rel=1e-9, abs=1e-6), (b, g)


def test_one_burst_of_a_group_is_one_batch_never_a_finding() -> None:
    """Group g's 30 jobs all in one batch, waiting twice the rest's there, then batches in
    which only the rest places: one matched batch, not ten, so no comparison at all."""
    tracker = _tracker()
    for _ in range(30):
        tracker.add("team", "g", BATCH, 200.0)
        tracker.add("team", "r", BATCH, 100.0)
    tracker.close_batch()
    for b in range(12):
        for i in range(100):
            tracker.add("team", "r", BATCH, 50.0 + (i * 7 + b) % 40)
        tracker.close_batch()
    assert tracker.evaluate() == []


def test_the_gap_is_the_batches_own_ratio_whatever_their_volumes() -> None:
    """g waits 2 to 2.45 times the rest in every batch, but most of its jobs are in the
    quiet batches and most of the rest's in the busy ones: its mean wait is a fifth of the
    rest's, and its time-matched gap is still between +100% and +145%."""
    tracker = _tracker()
    for b in range(40):
        if b % 2:
            tracker.add("team", "g", BATCH, 2000.0 + b)
            for i in range(40):
                tracker.add("team", "r", BATCH, 1000.0 + i)
        else:
            for i in range(10):
                tracker.add("team", "g", BATCH, 20.0 + i)
            tracker.add("team", "r", BATCH, 10.0)
        tracker.close_batch()
    gap = {g.group: g for g in tracker.evaluate()}["g"]
    assert gap.mean_wait_s < gap.rest_wait_s / 4
    assert 1.0 < gap.gap < 1.45 and gap.significant and gap.batches == 40


class _Core:
    def __init__(self) -> None:
        self.alert_book = AlertBook()


_AT = Where("d-1", 1, dt.datetime(2026, 11, 2, tzinfo=dt.UTC))


def _lifecycle(detector: SchedulingEquityDetector, batches: int,
               feed: object) -> list[tuple[int, str, str]]:
    """Each batch: ``feed(b)`` adds its waits; then the evaluation's fires and resolves
    (applied to the alert book, as the core does)."""
    core = _Core()
    log = []
    for b in range(batches):
        feed(b)  # type: ignore[operator]
        for edge in detector.evaluate(core, _AT):  # type: ignore[arg-type]
            if isinstance(edge, Fire):
                core.alert_book.fire(edge.key, edge.alert, b)
                log.append((b, "fire", edge.alert.summary))
            else:
                assert isinstance(edge, Resolve)
                core.alert_book.resolve(edge.key)
                log.append((b, "resolve", edge.why))
    return log


def test_a_group_hovering_at_the_minimum_support_does_not_flap() -> None:
    """A steady threefold gap, about 3 waited jobs of g per batch against a minimum of 30 in
    a 10-batch window: support comes and goes, the alert fires once and stays open."""
    detector = SchedulingEquityDetector(CoreConfig(wait_gap_window=10, min_group_support=30))
    counts = [3, 2, 4, 3, 3, 2, 3, 4, 2, 3, 3]

    def feed(b: int) -> None:
        for i in range(3 if b < 10 else counts[b % 11]):
            detector.tracker.add("team", "g", BATCH, 300.0 + i)
        for i in range(40):
            detector.tracker.add("team", "r", BATCH, 100.0 + (i * 13 + b) % 50)

    log = _lifecycle(detector, 60, feed)
    assert [(b, what) for b, what, _ in log] == [(9, "fire")]


def test_the_alert_resolves_when_its_class_is_back_under_the_limit() -> None:
    """g's jobs wait twice as long for 30 batches, then like the others'."""
    detector = SchedulingEquityDetector(CoreConfig(wait_gap_window=10, min_group_support=10))

    def feed(b: int) -> None:
        for g in ("g", "r", "s"):
            for i in range(5):
                wait = 100.0 + (i * 7 + b) % 11
                detector.tracker.add("team", g, BATCH, wait * 2 if g == "g" and b < 30
                                     else wait)

    log = _lifecycle(detector, 90, feed)
    fired, resolved = log[0], log[1]
    assert fired[1] == "fire" and "team=g's priority 1 batch jobs wait" in fired[2]
    assert resolved[1] == "resolve" and "at or under the 12% limit" in resolved[2]
    assert 30 < resolved[0] < 42  # the window has to forget most of the gap
    assert [what for _, what, _ in log] == ["fire", "resolve"]


def test_without_support_for_a_whole_window_the_alert_closes_for_lack_of_data() -> None:
    detector = SchedulingEquityDetector(CoreConfig(wait_gap_window=10, min_group_support=10))

    def feed(b: int) -> None:
        for i in range(5):
            detector.tracker.add("team", "r", BATCH, 100.0 + (i * 7 + b) % 11)
            if b < 20:
                detector.tracker.add("team", "g", BATCH, 250.0 + (i * 5 + b) % 13)

    log = _lifecycle(detector, 60, feed)
    assert [what for _, what, _ in log] == ["fire", "resolve"]
    b, _, why = log[1]
    assert b == 29  # support lost at evaluation 20 (9 matched batches left), held 10 more
    assert why.startswith("team=g: closed for lack of data, not because the gap closed")


def test_bad_parameters_are_refused() -> None:
    for bad in ({"default_limit": 0.0}, {"limits": {"team": -1.0}}, {"min_support": 1},
                {"window": MIN_BATCHES - 1}, {"confidence": 1.0}):
        with pytest.raises(ValueError):
            _tracker(**bad)


def _core_after(events: list[dict[str, object]]) -> AuditCore:
    core = AuditCore(CoreConfig(attributes=("team",)))
    for event in events:
        core.process(line(event))
    core.finish()
    return core


def test_a_preempted_job_waits_from_its_preemption_not_from_its_submission() -> None:
    """Submitted 08:13:12, placed at 08:15, preempted at 10:00, placed again at 10:05: the
    second placement waited 5 minutes, not the 1 h 52 min since submission (its run before).
    Every wait figure counts it so: the group's mean, queue-wait drift's and scheduling
    equity's inputs."""
    core = _core_after([
        placement("d-1", action="place", at="2026-11-02T08:15:00.000Z", job_id="j-1"),
        placement("d-2", action="preempt", at="2026-11-02T10:00:00.000Z", job_id="j-1"),
        placement("d-3", action="place", at="2026-11-02T10:05:00.000Z", job_id="j-1")])
    stats = core.ledger.groups["team"]["a"]
    assert stats.wait_n == 2 and stats.wait_sum == pytest.approx(108 + 300)
    detector = core.detectors["scheduling_equity"]
    assert isinstance(detector, SchedulingEquityDetector)
    (_, n, total, waited, _), = detector.tracker.cells[("team", (2, "batch"))].ring
    assert (n, waited, total) == (2, 2, pytest.approx(108 + 300))
    assert core.requeue.at == {}


def test_a_rejected_preempted_job_is_forgotten_and_a_later_job_counts_from_submission() -> None:
    core = _core_after([
        placement("d-1", action="preempt", at="2026-11-02T08:30:00.000Z", job_id="j-1"),
        placement("d-2", action="reject", tier=None, at="2026-11-02T08:40:00.000Z",
                  job_id="j-1"),
        placement("d-3", action="place", at="2026-11-02T08:45:00.000Z", job_id="j-1")])
    assert core.requeue.at == {}
    assert core.ledger.groups["team"]["a"].wait_sum == pytest.approx(31 * 60 + 48)


@pytest.mark.parametrize(("place_id", "preempt_id"), [("0b7c", "f3a9"), ("f3a9", "0b7c")])
def test_a_job_evicted_and_placed_again_in_the_same_instant_waited_zero(
        place_id: str, preempt_id: str) -> None:
    """Through the sequencer, whichever decision id sorts first: the preemption is applied
    before the placement at the same time."""
    core = AuditCore(CoreConfig(attributes=("team",)))
    for event in (
            placement("d-1", action="place", at="2026-11-02T09:59:00.000Z", job_id="j-1"),
            placement(preempt_id, action="preempt", at="2026-11-02T10:00:00.000Z",
                      job_id="j-1"),
            placement(place_id, action="place", at="2026-11-02T10:00:00.000Z", job_id="j-1")):
        core.offer(line(event))
    core.finish()
    assert core.ledger.groups["team"]["a"].wait_sum == pytest.approx(6348.0)  # then 0
    assert core.requeue.at == {}


def test_a_job_id_reused_after_a_stale_preemption_waits_from_its_own_submission() -> None:
    """j-1 preempted on the 2nd and never placed again; on the 5th a new job reuses the id,
    submitted at 10:00:00 and placed at 10:00:10: 10 s, not three days."""
    core = _core_after([
        placement("d-1", action="place", at="2026-11-02T08:15:00.000Z", job_id="j-1"),
        placement("d-2", action="preempt", at="2026-11-02T09:00:00.000Z", job_id="j-1"),
        placement("d-3", action="place", at="2026-11-05T10:00:10.000Z", job_id="j-1",
                  submitted_at="2026-11-05T10:00:00.000Z")])
    assert core.ledger.groups["team"]["a"].wait_sum == pytest.approx(108.0 + 10.0)


def test_classes_beyond_the_cap_are_counted_once_per_placement() -> None:
    core = _core_after([])
    for i in range(20):
        event = placement(f"d-{i}", job={"job_class": f"c{i}", "priority": 1})
        core.process(line(event))
    detector = core.detectors["scheduling_equity"]
    assert isinstance(detector, SchedulingEquityDetector)
    assert len(detector.tracker.classes) == 16 and detector.tracker.untracked == 4


def test_the_requeue_clock_is_bounded() -> None:
    clock = RequeueClock(capacity=3)
    for i in range(10):
        clock.preempted(f"j{i}", float(i))
    assert list(clock.at) == ["j7", "j8", "j9"] and clock.forgotten == 7
    clock.preempted("j7", 11.0)  # preempted again: its latest preemption, now the newest
    assert clock.placed("j7") == 11.0 and clock.placed("j7") is None


def test_per_attribute_limits_from_the_configuration(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "placewatch.toml"
    config.write_text("wait_gap_limits = {team = 0.25, region = 1}\n")
    core = load_settings(config_file=config).core
    assert core.wait_gap_limits == (("region", 1.0), ("team", 0.25))
    assert SchedulingEquityDetector(core).tracker.limit_of("team") == 0.25
    assert SchedulingEquityDetector(core).tracker.limit_of("department") == 0.12
    for bad in ("wait_gap_limits = {team = 0}", "wait_gap_limits = [0.2]",
                "wait_gap_limits = {team = 'x'}", "wait_gap_window = 5",
                "attributes = ['team']\nwait_gap_limits = {teams = 0.2}"):
        config.write_text(bad + "\n")
        with pytest.raises(ConfigError, match=bad.split()[0]):
            load_settings(config_file=config)
