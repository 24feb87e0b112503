"""Parity figures and per-group selection rates match fairlearn's on the same input (1e-9)."""

from __future__ import annotations

import orjson
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    selection_rate,
)

from detectors import AuditCore, CoreConfig, fairness_summary
from simulator import SCENARIOS, Simulation


@pytest.fixture(scope="module")
def run() -> tuple[AuditCore, list[dict[str, object]]]:
    lines = list(Simulation(SCENARIOS["equity_drift"], 30_000, seed=8))
    core = AuditCore(CoreConfig(min_group_support=1))
    for raw in lines:
        core.process(raw)
    core.finish()
    return core, [orjson.loads(raw) for raw in lines]


@pytest.mark.parametrize("attribute", ["team", "department", "region", "tenant_tier"])
def test_preferred_share_and_parity_match_fairlearn(run: tuple[AuditCore, list],
                                                    attribute: str) -> None:
    core, events = run
    seen: set[str] = set()
    y, groups = [], []
    for event in events:  # the cheap-tier share's observations: tiered place decisions, once
        if event["event_type"] != "placement" or event["decision_id"] in seen:
            continue
        seen.add(event["decision_id"])
        decision = event["decision"]
        if decision["action"] == "place" and "tier" in decision:
            y.append(int(decision["tier"] in ("spot", "reserved")))
            groups.append(event["attributes"][attribute])
    frame = MetricFrame(metrics=selection_rate, y_true=y, y_pred=y, sensitive_features=groups)
    ours = fairness_summary(core.ledger, 1, 0.95, 0.8)[attribute]
    for group, rate in frame.by_group.items():
        assert ours["groups"][group]["preferred_rate"] == pytest.approx(rate, abs=1e-9)
    figures = ours["disparity"]["preferred_rate"]
    assert figures["parity_difference"] == pytest.approx(
        demographic_parity_difference(y, y, sensitive_features=groups), abs=1e-9)
    assert figures["parity_ratio"] == pytest.approx(
        demographic_parity_ratio(y, y, sensitive_features=groups), abs=1e-9)
