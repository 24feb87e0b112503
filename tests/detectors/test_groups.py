"""Group ledgers, parity figures and intervals."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from detectors import OVERFLOW_GROUP, EquityLedger, fairness_summary, parity, wilson_interval


def test_parity_matches_the_definitions() -> None:
    figures = parity({"x": 0.25, "y": 0.5, "z": 0.4})
    assert figures.difference == pytest.approx(0.25)
    assert figures.ratio == pytest.approx(0.5)
    assert (figures.min_group, figures.max_group, figures.groups_compared) == ("x", "y", 3)
    assert parity({"a": 0.0, "b": 0.0}).ratio == 1.0
    with pytest.raises(ValueError, match="at least one"):
        parity({})


@pytest.mark.parametrize(("k", "n"), [(0, 10), (10, 10), (3, 7), (500, 1000)])
def test_wilson_interval_contains_the_estimate_and_stays_in_range(k: int, n: int) -> None:
    low, high = wilson_interval(k, n, 1.96)
    assert 0.0 <= low <= k / n <= high <= 1.0
    # reference: the closed form (Wilson 1927), clipped to [0, 1]
    p, z = k / n, 1.96
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert low == pytest.approx(max(centre - half, 0.0), abs=1e-12)
    assert high == pytest.approx(min(centre + half, 1.0), abs=1e-12)


def test_groups_beyond_the_cap_share_the_overflow_group() -> None:
    ledger = EquityLedger(("team",), (), max_groups=3, max_attributes=8)
    names = {ledger.resolve({"team": f"t{i}"})[0].name for i in range(10)}
    assert names == {"t0", "t1", "t2", OVERFLOW_GROUP}
    assert ledger.overflowed["team"] == 7


def test_auto_attributes_stop_at_the_cap_and_count_the_rest() -> None:
    ledger = EquityLedger(None, (), max_groups=8, max_attributes=2)
    ledger.resolve({"a": "1", "b": "2", "c": "3"})
    assert ledger.attribute_names == ("a", "b")
    assert ledger.untracked_keys == 1


def test_pairs_are_audited_as_one_attribute() -> None:
    ledger = EquityLedger(("team", "region"), (("team", "region"),), 8, 8)
    groups = ledger.resolve({"team": "genomics", "region": "eu-west"})
    assert [(g.attribute, g.name) for g in groups] == [
        ("team", "genomics"), ("region", "eu-west"), ("team*region", "genomics*eu-west")]
    assert ledger.resolve({"team": "x"})[-1].attribute == "team"  # pair needs both keys


def test_summary_compares_only_supported_groups() -> None:
    ledger = EquityLedger(("team",), (), 8, 8)
    for team, n, cheap in (("a", 50, 40), ("b", 50, 20), ("tiny", 5, 0)):
        for i in range(n):
            stats = ledger.resolve({"team": team})[0]
            stats.decisions += 1
            stats.placed += 1
            stats.tiered += 1
            stats.preferred += i < cheap
    out = fairness_summary(ledger, min_support=30, confidence=0.95, ratio_threshold=0.8)
    figures = out["team"]["disparity"]["preferred_rate"]  # type: ignore[index]
    assert figures["groups_compared"] == 2
    assert figures["parity_ratio"] == pytest.approx(0.5)
    assert figures["four_fifths_point"] is True
    assert out["team"]["groups"]["tiny"]["preferred_rate"] == 0.0  # type: ignore[index]


@pytest.mark.parametrize(("n", "confident"), [(50, False), (400, True)])
def test_summary_tells_the_point_estimate_from_the_confident_finding(n: int,
                                                                     confident: bool) -> None:
    """Shares 0.8 and 0.44 (ratio 0.55): below four fifths as a point estimate at any size,
    with confidence (what the disparity alert needs) only once the groups are large."""
    ledger = EquityLedger(("team",), (), 8, 8)
    for team, share in (("a", 0.8), ("b", 0.44)):
        for i in range(n):
            stats = ledger.resolve({"team": team})[0]
            stats.decisions += 1
            stats.placed += 1
            stats.tiered += 1
            stats.preferred += i < round(share * n)
    out = fairness_summary(ledger, min_support=30, confidence=0.95, ratio_threshold=0.8)
    figures = out["team"]["disparity"]["preferred_rate"]  # type: ignore[index]
    assert figures["four_fifths_point"] is True
    assert figures["four_fifths_confident"] is confident
    assert figures["four_fifths_confident_groups"] == (["b"] if confident else [])
    high = out["team"]["disparity"]["preferred_rate_high_priority"]  # type: ignore[index]
    assert high is None  # no high-priority jobs: nothing to compare


def _one_attribute(*names: str) -> tuple[dict[str, Any], Callable[[str, int, int], None],
                                          Callable[[], object]]:
    """Groups of one attribute, an equity-drift detector over them, and two steps: add
    decisions (and queued ones) to a group, and close a batch."""
    from types import SimpleNamespace

    from detectors.drift import EquityDrift
    from detectors.groups import GroupStats

    table = {name: GroupStats("team", name) for name in names}
    ledger = SimpleNamespace(groups={"team": table})
    drift = EquityDrift(warmup=10_000, min_batches=2, prior=0.0, trend_window=5,
                        trend_alpha=0.01, trend_min_growth=0.0)

    def decide(name: str, n: int, queued: int) -> None:
        table[name].decisions += n
        table[name].queued += queued

    return table, decide, lambda: drift.refresh(ledger, 10.0)  # type: ignore[arg-type]


def test_drift_watches_visit_only_groups_with_news_and_pool_the_rest_for_quiet_ones(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A quiet group is not visited; when it next has decisions, its pooled batch holds every
    decision the other groups made since that batch began (here: three batches' worth)."""
    from detectors.rates import RateSpec

    read: list[str] = []
    counts = RateSpec.counts
    monkeypatch.setattr(RateSpec, "counts",
                        lambda spec, stats: read.append(stats.name) or counts(spec, stats))

    table, decide, refresh = _one_attribute("a", "b", "c")

    for name in table:
        decide(name, 100, 20)
    refresh()  # every group's first pooled batch closes (warm-up)
    watch = table["b"].drift["queue_rate"]  # type: ignore[index]
    assert watch.warm == [(20, 100, 0.2, 200)] and watch.pending == [0, 0]
    for _ in range(3):
        decide("a", 50, 10)
        decide("c", 30, 3)
        read.clear()
        refresh()
        assert "b" not in read and {"a", "c"} <= set(read)  # b was not visited
    decide("b", 40, 8)
    refresh()
    assert watch.warm[-1] == (8, 40, 39 / 240, 240)  # a's and c's 3 × 80 decisions since


def test_a_quiet_groups_open_batch_pools_the_rest_until_its_own_next_event() -> None:
    """b's batch is open (too few of its own decisions) while it is quiet: when it closes it
    holds all the rest's decisions since it began, the overflow group's and those of a group
    that appeared meanwhile included. A batch no other group fed (rest 0) stays open until
    the group's own next event, not the first batch where only the rest had news."""
    from detectors.groups import GroupStats

    table, decide, refresh = _one_attribute("a", "b", OVERFLOW_GROUP)

    decide("b", 100, 20)
    refresh()  # only b had news: rest 0, its batch stays open
    b = table["b"].drift["queue_rate"]  # type: ignore[index]
    assert b.warm == [] and b.pending == [20, 100]
    decide("a", 100, 30)
    refresh()  # only the rest had news: b is not visited, still open
    assert b.warm == [] and b.pending == [20, 100]
    decide("b", 10, 2)
    refresh()
    assert b.warm == [(22, 110, 0.3, 100)]
    decide("b", 20, 1)  # too few queued to close (1 < 5 expected events)
    refresh()
    assert b.pending == [1, 20] and len(b.warm) == 1
    table["c"] = GroupStats("team", "c")  # appears while b's batch is open
    decide("c", 40, 4)
    decide(OVERFLOW_GROUP, 60, 6)
    refresh()
    decide("a", 50, 5)
    refresh()
    decide("b", 30, 5)
    refresh()
    assert b.warm[-1] == (6, 50, 15 / 150, 150)  # c's 40, the overflow's 60, a's 50
    c = table["c"].drift["queue_rate"]  # type: ignore[index]
    assert c.warm == [] and c.pending == [4, 40]  # too few queued: open since it appeared
    decide("c", 10, 2)
    refresh()
    assert c.warm == [(6, 50, 16 / 140, 140)]  # the overflow's 60, a's 50, b's 30
