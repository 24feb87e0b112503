"""The queue-wait watch on synthetic waits: its scores and their variance against brute force
and simulation, and what it must and must not find (a class-wide burst is load, another group
sending more jobs or a group moving work between classes is no change; one group falling
behind its class is)."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.groups import OVERFLOW_GROUP
from detectors.wait_drift import MAX_CLASSES, JobClass, WaitDrift, WaitSignal, group_scores

GROUPS = ("a", "b", "c", "d", "e")
THRESHOLD = 13.0  # about the family threshold of the simulator's default run
SPOT: JobClass = (1, "spot")


def _brute(waits: dict[str, list[float]]) -> dict[str, float]:
    """Each group's summed score: per wait, the mean over the other groups of the share of
    their waits below it (ties half)."""
    out = {}
    for group, mine in waits.items():
        others = [ws for g, ws in waits.items() if g != group]
        out[group] = sum(
            np.mean([(sum(y < x for y in ws) + 0.5 * sum(y == x for y in ws)) / len(ws)
                     for ws in others]) for x in mine)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_scores_match_brute_force_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    waits = {f"g{i}": rng.integers(1, 6, size=int(rng.integers(1, 12))).astype(float).tolist()
             for i in range(4)}
    got = group_scores(waits)
    for group, expected in _brute(waits).items():
        assert got[group][0] == pytest.approx(expected)


@pytest.mark.parametrize(("sizes", "tied"), [((3, 10), False), ((8, 8, 8, 8, 8), False),
                                             ((2, 30, 5), True), ((5, 5), True)])
def test_the_null_variance_is_what_exchangeable_waits_give(sizes: tuple[int, ...],
                                                           tied: bool) -> None:
    rng = np.random.default_rng(7)
    z2 = []
    for _ in range(3000):
        waits = {f"g{i}": (rng.integers(1, 4, size=k) if tied else rng.random(k)).tolist()
                 for i, k in enumerate(sizes)}
        score, variance = group_scores(waits)["g0"]
        if variance > 1e-12:
            z2.append((score - sizes[0] / 2) ** 2 / variance)
    assert 0.9 < float(np.mean(z2)) < 1.1


def _run(batches: int, factor: dict[str, float], burst: float = 1.0, seed: int = 1,
         change_at: int = 40, revert_at: int | None = None, per_group: int = 8,
         volume: dict[str, int] | None = None) -> list[tuple[int, WaitSignal]]:
    """Lognormal waits (median 10 min, log-spread 1), ``per_group`` per group and batch (or
    ``volume[g]`` after the change); from ``change_at`` (to ``revert_at``) group g's waits are
    × ``factor[g]`` and everyone's × ``burst``."""
    rng = np.random.default_rng(seed)
    drift = WaitDrift(warmup=150, min_batches=5, shift=0.15)
    found = []
    for batch in range(batches):
        changed = batch >= change_at and (revert_at is None or batch < revert_at)
        for group in GROUPS:
            scale = (factor.get(group, 1.0) * burst) if changed else 1.0
            count = (volume or {}).get(group, per_group) if changed else per_group
            for wait in rng.lognormal(np.log(600.0), 1.0, size=count):
                drift.add("team", group, SPOT, float(wait * scale))
        found += [(batch, s) for s in drift.refresh(THRESHOLD)]
    return found


def test_a_burst_of_the_whole_class_is_not_a_finding() -> None:
    assert _run(200, {}, burst=4.0) == []


def test_fair_waits_raise_nothing_over_many_batches() -> None:
    for seed in range(3):
        assert _run(300, {}, seed=seed) == []


def test_another_group_sending_more_jobs_moves_nobody() -> None:
    """Group e always waits half as long; from the change it sends four times the jobs. The
    others' waits are unchanged, and so are their scores (other groups weigh alike)."""
    for seed in range(3):
        assert _run(300, {"e": 0.5}, change_at=0, volume={"e": 32}, seed=seed) == []


def test_moving_work_between_classes_is_not_a_change() -> None:
    """Group a waits less than the others in one class and more in another; only its mix of
    the two moves."""
    rng = np.random.default_rng(3)
    drift = WaitDrift(warmup=150, min_batches=5, shift=0.15)
    found = []
    for batch in range(400):
        share_spot = 0.8 if batch < 100 else 0.2
        for group in GROUPS:
            for _ in range(8):
                spot = rng.random() < (share_spot if group == "a" else 0.5)
                factor = 1.0 if group != "a" else (0.6 if spot else 1.7)
                drift.add("team", group, SPOT if spot else (1, "reserved"),
                          float(rng.lognormal(np.log(600), 0.5)) * factor)
        found += drift.refresh(THRESHOLD)
    assert found == []


def test_one_group_waiting_longer_is_found_named_and_resolves_when_it_reverts() -> None:
    # x1.5 at a log-spread of 1 moves the score by 0.11: a few hundred waits to be sure
    found = _run(300, {"c": 1.5}, burst=2.0, revert_at=160)
    kinds = [(s.kind, s.group) for _, s in found]
    assert kinds == [("wait_drift", "c"), ("recovered", "c")], kinds
    (fired_at, fired), (resolved_at, _) = found
    assert 40 <= fired_at < 120 and resolved_at >= 160
    assert fired.job_class == SPOT
    assert fired.score > fired.reference_score + 0.06
    # the words' figures: since the change, the group's waits are about x1.5 the others' over
    # the same batches (both burst x2), and over twice its own before
    assert 1.2 < fired.since[0] / fired.rest[0] < 2.0
    assert fired.since[0] > 2 * fired.before[0]


def test_the_overflow_group_is_a_reference_never_a_watch() -> None:
    drift = WaitDrift(warmup=20, min_batches=2, shift=0.15)
    rng = np.random.default_rng(0)
    for _ in range(50):
        for group in ("a", "b", OVERFLOW_GROUP):
            for wait in rng.lognormal(np.log(60), 1.0, size=5):
                drift.add("team", group, (0, "spot"), float(wait))
        drift.refresh(THRESHOLD)
    assert set(drift.watches) == {("team", "a"), ("team", "b")}
    assert all(w.reference is not None for w in drift.watches.values())


def test_equal_waits_carry_nothing() -> None:
    drift = WaitDrift(warmup=20, min_batches=2, shift=0.15)
    for _ in range(50):
        for group in ("a", "b"):
            for _ in range(5):
                drift.add("team", group, (0, "spot"), 60.0)
        assert drift.refresh(THRESHOLD) == []
    assert drift.watches == {}


def test_classes_beyond_the_limit_are_counted_not_scored() -> None:
    drift = WaitDrift(warmup=20, min_batches=2, shift=0.15)
    for priority in range(MAX_CLASSES + 3):
        drift.add("team", "a", (priority, "spot"), 10.0)
    assert drift.untracked == 3


@pytest.mark.parametrize("bad", [{"warmup": 1}, {"min_batches": 1}, {"shift": 0.0},
                                 {"shift": 0.5}])
def test_bad_parameters_are_refused(bad: dict[str, float]) -> None:
    kwargs = {"warmup": 150, "min_batches": 5, "shift": 0.15} | bad
    with pytest.raises(ValueError):
        WaitDrift(**kwargs)  # type: ignore[arg-type]
