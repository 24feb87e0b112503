"""The queue-wait watch on synthetic waits: its scores against brute force, and what it must
and must not find (a class-wide burst is load; one group falling behind its class is not)."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.groups import OVERFLOW_GROUP
from detectors.wait_drift import MAX_CLASSES, WaitDrift, WaitSignal, wait_scores

GROUPS = ("a", "b", "c", "d", "e")
THRESHOLD = 13.0  # about the family threshold of the simulator's default run


def _brute(waits: list[float], codes: list[int]) -> list[float]:
    out = []
    for w, c in zip(waits, codes, strict=True):
        rest = [x for x, k in zip(waits, codes, strict=True) if k != c]
        out.append((sum(x < w for x in rest) + 0.5 * sum(x == w for x in rest)) / len(rest))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_scores_match_brute_force_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    waits = rng.integers(1, 6, size=40).astype(float).tolist()  # many ties
    codes = rng.integers(0, 4, size=40).tolist()
    scores, ties = wait_scores(waits, [f"g{c}" for c in codes])
    assert scores == pytest.approx(_brute(waits, codes))
    _, counts = np.unique(waits, return_counts=True)
    assert ties == pytest.approx(float(np.sum(counts ** 3 - counts)) / (40 * 39))


def _run(batches: int, factor: dict[str, float], burst: float = 1.0, seed: int = 1,
         change_at: int = 40, revert_at: int | None = None, per_group: int = 8
         ) -> list[tuple[int, WaitSignal]]:
    """Lognormal waits (median 10 min, log-spread 1), ``per_group`` per group and batch;
    from ``change_at`` (to ``revert_at``) group g's waits are × ``factor[g]`` and everyone's ×
    ``burst``."""
    rng = np.random.default_rng(seed)
    drift = WaitDrift(warmup=150, min_batches=5, shift=0.15)
    found = []
    for batch in range(batches):
        changed = batch >= change_at and (revert_at is None or batch < revert_at)
        for group in GROUPS:
            scale = (factor.get(group, 1.0) * burst) if changed else 1.0
            for wait in rng.lognormal(np.log(600.0), 1.0, size=per_group):
                drift.add("team", group, (1, "spot"), float(wait * scale))
        found += [(batch, s) for s in drift.refresh(THRESHOLD)]
    return found


def test_a_burst_of_the_whole_class_is_not_a_finding() -> None:
    assert _run(200, {}, burst=4.0) == []


def test_fair_waits_raise_nothing_over_many_batches() -> None:
    for seed in range(3):
        assert _run(300, {}, seed=seed) == []


def test_one_group_waiting_longer_is_found_named_and_resolves_when_it_reverts() -> None:
    # x1.5 at a log-spread of 1 moves the score by 0.11: about 200-400 waits to be sure
    found = _run(300, {"c": 1.5}, burst=2.0, revert_at=160)
    kinds = [(s.kind, s.group) for _, s in found]
    assert kinds == [("wait_drift", "c"), ("recovered", "c")], kinds
    (fired_at, fired), (resolved_at, _) = found
    assert 40 <= fired_at < 100 and resolved_at >= 160
    assert fired.job_class == (1, "spot")
    assert fired.score > fired.reference_score + 0.08
    # the words' figures: the group's waits since are about x1.5 the rest's (both burst x2)
    assert 1.2 < fired.since[0] / fired.rest[0] < 2.0
    assert fired.since[0] > 2 * fired.before[0]


def test_equal_waits_carry_nothing_and_the_overflow_group_has_no_watch() -> None:
    drift = WaitDrift(warmup=20, min_batches=2, shift=0.15)
    for _ in range(50):
        for group in ("a", "b", OVERFLOW_GROUP):
            for _ in range(5):
                drift.add("team", group, (0, "spot"), 60.0)
        assert drift.refresh(THRESHOLD) == []
    assert ("team", OVERFLOW_GROUP) not in drift.watches
    assert all(w.reference is None for w in drift.watches.values())  # nothing was scored


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
