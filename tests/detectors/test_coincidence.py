"""One population, one alert: groups of different attributes made of the same decisions are
reported in one alert that names both; a group and its superset are not merged."""

from __future__ import annotations

from typing import Any

import pytest

from detectors.alerts import Alert
from detectors.config import CoreConfig
from detectors.pipeline import AuditCore
from simulator import SCENARIOS, Simulation


def _alerts(events: int, **config: Any) -> tuple[list[Alert], AuditCore]:
    core = AuditCore(CoreConfig(**config))
    edges: list[Alert] = []
    for raw in Simulation(SCENARIOS["equity_drift"], events, seed=1):
        core.process(raw)
        edges.extend(core.drain().alerts)
    return edges, core


@pytest.fixture(scope="module")
def merged() -> tuple[list[Alert], AuditCore]:
    return _alerts(40_000)


def test_research_and_free_are_one_alert_naming_both(merged: tuple[list[Alert], AuditCore]
                                                     ) -> None:
    edges, core = merged
    # in the simulator every research team is on the free tier, and only they are
    assert not [a for a in edges if a.attribute == "tenant_tier"]
    research = [a for a in edges if a.attribute == "department" and a.group == "research"]
    assert research
    for alert in research:
        also = alert.details["same_population"]
        assert isinstance(also, list)
        assert also[0]["attribute"] == "tenant_tier" and also[0]["group"] == "free"
        assert also[0]["shared"] == 1.0
        assert "Same decisions as tenant_tier=free" in alert.summary
    assert core.alerts_merged == len(research)
    # team=genomics is a part of department=research: it keeps its own alert
    assert [a for a in edges if a.attribute == "team" and a.group == "genomics"]


def test_without_merging_the_same_population_alerts_twice() -> None:
    edges, core = _alerts(40_000, coincide_overlap=1.5)
    free = [(a.kind, a.metric) for a in edges if a.attribute == "tenant_tier"]
    research = [(a.kind, a.metric) for a in edges if a.attribute == "department"
                and a.group == "research"]
    assert free and free == research
    assert core.alerts_merged == 0


def _two_coinciding(ledger_groups: int = 300) -> tuple[Any, Any, Any]:
    from detectors.groups import RECENT, EquityLedger

    ledger = EquityLedger(attributes=("team", "tier"), attribute_pairs=(), max_groups=10,
                          max_attributes=8)
    for index in range(ledger_groups):  # every team=a decision is a tier=free one
        for stats in ledger.resolve({"team": "a", "tier": "free"}):
            stats.recent[stats.decisions % RECENT] = index
            stats.decisions += 1
    team = ledger.groups["team"]["a"]
    tier = ledger.groups["tier"]["free"]
    return ledger, team, tier


def _edge(attribute: str, group: str) -> tuple[Any, Alert]:
    from detectors.alerts import fingerprint

    key = ("equity_drift", attribute, group, "preferred_rate")
    return key, Alert("PlacewatchEquityDrift", "firing", fingerprint(key), *key,
                      severity="warning", value=0.4, reference=0.6, decision_id="d-1",
                      event_index=1, at="2026-11-02T08:15:00.000Z",
                      summary=f"{attribute}={group}: drifted.")


def test_merged_only_within_the_batch_the_first_alert_fired_in() -> None:
    from detectors.alerts import AlertBook
    from detectors.coincidence import SamePopulation

    ledger, _, _ = _two_coinciding()
    book = AlertBook()
    same = SamePopulation(0.95)
    first_key, first = _edge("team", "a")
    book.fire(first_key, first, 0.0)
    queued = [first]
    second_key, second = _edge("tier", "free")
    assert same.absorb(second_key, second, ledger, book, queued)
    [written] = queued
    assert "Same decisions as tier=free" in written.summary
    entry = written.details["same_population"][0]  # type: ignore[index]
    assert (entry["value"], entry["reference"], entry["shared"]) == (0.4, 0.6, 1.0)
    assert book.firing(first_key) is written and same.merged == 1
    # still the same decisions, the first still open: stays merged, not counted again
    assert same.absorb(second_key, second, ledger, book, [])
    assert same.merged == 1
    # when the first resolves, the merged group is handed back for promotion
    assert same.released(first_key) == [(second_key, second)]
    assert same.released(first_key) == []


def test_not_merged_once_the_first_alert_was_written_or_when_they_diverge() -> None:
    from detectors.alerts import AlertBook
    from detectors.coincidence import SamePopulation
    from detectors.groups import RECENT

    ledger, _, tier = _two_coinciding()
    book = AlertBook()
    same = SamePopulation(0.95)
    first_key, first = _edge("team", "a")
    book.fire(first_key, first, 0.0)
    second_key, second = _edge("tier", "free")
    assert not same.absorb(second_key, second, ledger, book, [])  # first already delivered
    assert same.absorb(second_key, second, ledger, book, [first])
    for index in range(1000, 1000 + RECENT):  # tier=free is now other decisions
        tier.recent[tier.decisions % RECENT] = index
        tier.decisions += 1
    assert not same.absorb(second_key, second, ledger, book, [])  # diverged: on its own
    assert same.released(first_key) == []
