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
