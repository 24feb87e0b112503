"""The simulator: deterministic, contract-valid, and each scenario does what it says."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import jsonschema
import orjson
import pytest

from simulator import SCENARIOS, Simulation
from tests.helpers import CONTRACT

N = 60_000


@pytest.fixture(scope="module")
def runs() -> dict[str, tuple[list[bytes], dict[str, Any]]]:
    out = {}
    for name in SCENARIOS:
        sim = Simulation(SCENARIOS[name], N, seed=5)
        out[name] = (list(sim), sim.truth)
    return out


def _rates(lines: list[bytes], start: int, stop: int, team: str) -> dict[str, float]:
    counts: Counter[str] = Counter()
    for raw in lines[start:stop]:
        ev = orjson.loads(raw)
        if ev["event_type"] != "placement":
            continue
        who = "t" if ev["attributes"]["team"] == team else "o"
        action = ev["decision"]["action"]
        counts[who + "decisions"] += 1
        counts[who + action] += 1
        if action == "place" and ev["decision"]["tier"] in ("spot", "reserved"):
            counts[who + "preferred"] += 1
    return {
        "target_pref": counts["tpreferred"] / counts["tplace"],
        "other_pref": counts["opreferred"] / counts["oplace"],
        "target_preempt": counts["tpreempt"] / counts["tdecisions"],
        "other_preempt": counts["opreempt"] / counts["odecisions"],
    }


def test_same_seed_same_bytes_and_other_seed_differs() -> None:
    a = b"".join(Simulation(SCENARIOS["feedback_loop"], 3000, seed=9))
    b = b"".join(Simulation(SCENARIOS["feedback_loop"], 3000, seed=9))
    c = b"".join(Simulation(SCENARIOS["feedback_loop"], 3000, seed=10))
    assert a == b != c


def test_every_event_follows_the_contract_schema(runs: dict[str, Any]) -> None:
    schemas = {n: jsonschema.Draft202012Validator(
        json.loads((CONTRACT / f"{n}.schema.json").read_text())) for n in ("placement", "outcome")}
    for name, (lines, _) in runs.items():
        for raw in lines[:: 97]:
            event = orjson.loads(raw)
            schemas[event["event_type"]].validate(event)
        assert len(lines) == N, name


def test_ground_truth_names_the_change(runs: dict[str, Any]) -> None:
    assert runs["baseline"][1]["change"] is None
    for name in SCENARIOS:
        if name == "baseline":
            continue
        change = runs[name][1]["change"]
        expected = int(N * SCENARIOS[name].change_fraction)
        assert change["from_event_index"] == expected, name
        assert expected == (0 if name == "standing_disparity" else int(N * 0.4)), name
        assert change["group"] == "genomics" and change["attribute"] == "team"
        assert change["expected_kinds"]


def test_outcomes_arrive_after_their_placements(runs: dict[str, Any]) -> None:
    seen = set()
    for raw in runs["baseline"][0]:
        ev = orjson.loads(raw)
        if ev["event_type"] == "placement":
            seen.add(ev["decision_id"])
        else:
            assert ev["decision_id"] in seen


def test_baseline_is_fair(runs: dict[str, Any]) -> None:
    r = _rates(runs["baseline"][0], 0, N, "genomics")
    assert abs(r["target_pref"] - r["other_pref"]) < 0.05


def test_equity_drift_takes_about_twenty_points(runs: dict[str, Any]) -> None:
    lines, truth = runs["equity_drift"]
    k = truth["change"]["from_event_index"]
    before, after = _rates(lines, 0, k, "genomics"), _rates(lines, k, N, "genomics")
    assert abs(before["target_pref"] - before["other_pref"]) < 0.05
    assert 0.13 < after["other_pref"] - after["target_pref"] < 0.28


def test_standing_disparity_is_short_from_the_first_event(runs: dict[str, Any]) -> None:
    lines, _ = runs["standing_disparity"]
    first, second = _rates(lines, 0, N // 2, "genomics"), _rates(lines, N // 2, N, "genomics")
    for half in (first, second):
        assert half["target_pref"] / half["other_pref"] < 0.7
    assert abs(first["target_pref"] - second["target_pref"]) < 0.06


def test_the_step_is_flat_the_loop_compounds_and_the_slow_drift_slides(
        runs: dict[str, Any]) -> None:
    def gaps(name: str) -> list[float]:
        lines, truth = runs[name]
        k = truth["change"]["from_event_index"]
        third = (N - k) // 3
        out = []
        for i in range(3):
            r = _rates(lines, k + i * third, k + (i + 1) * third, "genomics")
            out.append(r["other_pref"] - r["target_pref"])
        return out
    step = gaps("step_change")
    assert min(step) > 0.05 and max(step) - min(step) < 0.1
    loop = gaps("feedback_loop")
    assert loop[0] < loop[1] < loop[2] and loop[2] - loop[0] > 0.15
    # a slow drift starts from nothing and slides (here 60% of its 60,000-event ramp); over
    # 11 seeds the thirds' gaps were -0.07..0.04, 0.02..0.10 and 0.05..0.14
    slow = gaps("slow_drift")
    assert slow[0] < 0.03 and slow[2] > 0.07 and slow[2] - slow[0] > 0.08


def test_preemptions_concentrate_on_the_target(runs: dict[str, Any]) -> None:
    lines, truth = runs["preemption_concentration"]
    after = _rates(lines, truth["change"]["from_event_index"], N, "genomics")
    assert after["target_preempt"] > 3 * after["other_preempt"]


def _runtime_ratio(lines: list[bytes], start: int, stop: int, team: str) -> float:
    """Geometric mean of actual / predicted runtime of ``team``'s succeeded jobs placed
    between two event indices."""
    import math

    predicted: dict[str, float] = {}
    logs = []
    for i, raw in enumerate(lines):
        ev = orjson.loads(raw)
        if ev["event_type"] == "placement":
            if start <= i < stop and ev["attributes"]["team"] == team and \
                    ev["decision"]["action"] == "place":
                predicted[ev["decision_id"]] = ev["decision"]["predicted_runtime_s"]
        elif ev["status"] == "succeeded" and ev["decision_id"] in predicted:
            logs.append(math.log(ev["actual_runtime_s"] / predicted[ev["decision_id"]]))
    assert len(logs) > 100
    return math.exp(sum(logs) / len(logs))


def test_forecast_bias_under_forecasts_the_target(runs: dict[str, Any]) -> None:
    lines, truth = runs["forecast_bias"]
    k = truth["change"]["from_event_index"]
    before = _runtime_ratio(lines, 0, k, "genomics")
    after = _runtime_ratio(lines, k, N, "genomics")
    # x1.5 under-forecast (timeouts cut the longest jobs short, so a little less is seen)
    assert 1.3 < after / before < 1.6
    assert 0.8 < before < 1.25
    # the other teams and the baseline are unchanged
    other = _runtime_ratio(lines, k, N, "search") / _runtime_ratio(lines, 0, k, "search")
    assert 0.85 < other < 1.15
    base, _ = runs["baseline"]
    assert 0.85 < _runtime_ratio(base, k, N, "genomics") / before < 1.15


def test_override_leak_keeps_applying_an_expired_override(runs: dict[str, Any]) -> None:
    lines, _ = runs["override_leak"]
    expired = 0
    for raw in lines:
        ev = orjson.loads(raw)
        o = ev.get("override")
        if o and o["reason"].startswith("capacity pin") and ev["decided_at"] > o["expires_at"]:
            expired += 1
    assert expired > 100


def test_endless_mode_changes_at_the_documented_index() -> None:
    sim = Simulation(SCENARIOS["equity_drift"], None, seed=1)
    for i, _ in enumerate(sim):
        if i > 20_001:
            break
    assert sim.truth["change"]["from_event_index"] == 20_000
