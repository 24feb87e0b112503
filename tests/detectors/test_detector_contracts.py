"""Shared contract tests run on every registered detector, and golden streams for the core."""

from __future__ import annotations

import math
import pickle

import pytest

from detectors.registry import REGISTRY, DetectorSpec
from simulator import SCENARIOS, Simulation
from tests.detectors.test_pipeline import _run


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_constant_in_control_stream_never_signals(name: str) -> None:
    spec = REGISTRY[name]
    detector = spec.make()
    assert not any(spec.feed(detector, spec.in_control) for _ in range(5000))


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_state_survives_pickle_and_continues_identically(name: str) -> None:
    spec = REGISTRY[name]
    stream = [spec.in_control] * 37 + [_changed(spec)] * 40
    whole = spec.make()
    signals = [spec.feed(whole, x) for x in stream]
    half = spec.make()
    first = [spec.feed(half, x) for x in stream[:50]]
    copy = pickle.loads(pickle.dumps(half))
    rest = [spec.feed(copy, x) for x in stream[50:]]
    assert first + rest == signals
    assert pickle.dumps(copy) == pickle.dumps(whole)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_deterministic(name: str) -> None:
    spec = REGISTRY[name]
    stream = [spec.in_control] * 20 + [_changed(spec)] * 20
    runs = []
    for _ in range(2):
        detector = spec.make()
        runs.append([spec.feed(detector, x) for x in stream])
    assert runs[0] == runs[1]


CHANGING = sorted(n for n, s in REGISTRY.items() if not math.isnan(s.changed))


@pytest.mark.parametrize("name", CHANGING)
def test_signals_after_a_known_change(name: str) -> None:
    spec = REGISTRY[name]
    detector = spec.make()
    for _ in range(200):
        assert not spec.feed(detector, spec.in_control)
    assert any(spec.feed(detector, spec.changed) for _ in range(200))


def test_gap_trend_tells_a_loop_from_a_step() -> None:
    loop = REGISTRY["gap_trend"].make()         # detected at a 20-point shortfall
    for shortfall in (0.25, 0.3, 0.38, 0.45, 0.45, 0.46):
        loop.update_batch(shortfall, 50, 0.25)
    assert loop.done and loop.amplifying
    step = REGISTRY["gap_trend"].make()
    for shortfall in (0.2, 0.22, 0.19, 0.21, 0.2, 0.18):
        step.update_batch(shortfall, 50, 0.25)
    assert step.done and not step.amplifying


def _changed(spec: DetectorSpec) -> float:
    return spec.in_control if math.isnan(spec.changed) else spec.changed


# -- golden streams: the simulator's scenarios with their known change points ----------------

def _alerts(scenario: str, seed: int, events: int = 70_000) -> tuple[list, int | None]:
    sim = Simulation(SCENARIOS[scenario], events, seed)
    lines = list(sim)
    core = _run(lines)
    change = sim.truth["change"]
    return core.drain().alerts, change and change["from_event_index"]


def test_golden_baseline_raises_nothing() -> None:
    alerts, _ = _alerts("baseline", seed=11)
    assert alerts == []


@pytest.mark.parametrize(("scenario", "kind", "metric"), [
    ("equity_drift", "equity_drift", "preferred_rate"),
    ("forecast_bias", "forecast_drift", "runtime_actual_over_predicted"),
    ("preemption_concentration", "equity_drift", "preemption_rate"),
])
def test_golden_change_is_found_after_its_change_point_naming_the_group(
        scenario: str, kind: str, metric: str) -> None:
    alerts, change = _alerts(scenario, seed=3)
    assert change is not None
    assert all(a.event_index >= change for a in alerts), "an alert before the change"
    hits = [a for a in alerts if (a.kind, a.attribute, a.group, a.metric)
            == (kind, "team", "genomics", metric)]
    assert hits, [(a.kind, a.attribute, a.group, a.metric) for a in alerts]


def test_golden_loop_is_amplification_and_step_is_not() -> None:
    loop, _ = _alerts("feedback_loop", seed=3, events=100_000)
    assert any(a.kind == "amplification" and a.group == "genomics" for a in loop)
    step, _ = _alerts("step_change", seed=3, events=100_000)
    assert any(a.kind == "equity_drift" and a.group == "genomics" for a in step)
    assert not any(a.kind == "amplification" for a in step)


def test_golden_slow_drift_is_found_once_it_has_gone_far_enough() -> None:
    """The team's cheap-tier share slides from event 40,000 on (docs/detectors.md, "Slow
    drifts and trends"): no step to find, and the same CUSUM finds it, after the change."""
    alerts, change = _alerts("slow_drift", seed=3, events=100_000)
    assert change is not None
    hits = [a for a in alerts if (a.kind, a.attribute, a.group, a.metric)
            == ("equity_drift", "team", "genomics", "preferred_rate")]
    assert hits and hits[0].event_index > change + 10_000
    assert all(a.event_index >= change for a in alerts), "an alert before the change"
