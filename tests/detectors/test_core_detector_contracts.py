"""The contract every detector the core runs must keep, run on every entry of
``detectors.registry.DETECTORS`` through the whole core, and on a toy detector that a test adds
with its class and one registry entry (a real one also needs its Prometheus rule, runbook and
promtool cases, which tests/alerts requires of every registered kind).

For each detector: its kinds are declared once; it defines no public method the core would
not call (a misnamed hook would be skipped silently); the same stream gives the same edges;
the core's whole state survives a pickle round-trip in mid-stream and the copy goes on to the
same edges and the same figures (summary, counters, statistics) as the core that never
stopped; the fair ``baseline`` stream raises none of its alerts; its scenario's change raises
one after the change point, and a detector without alerts shows in its figures that it was
fed; every one of its alerts that fired and resolved did so in that order, with
open = fired - resolved.
"""

from __future__ import annotations

import functools
import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from detectors.alerts import Alert, AlertKind, Where
from detectors.config import CoreConfig
from detectors.detector import CoreDetector, CoreView, Edge, Fire, Resolve
from detectors.pipeline import AuditCore
from detectors.registry import DETECTORS, CoreDetectorSpec, alert_kinds
from simulator import SCENARIOS, Simulation

EVENTS = 40_000
SEED = 5


@functools.cache
def _stream(scenario: str) -> tuple[tuple[bytes, ...], int | None]:
    sim = Simulation(SCENARIOS[scenario], EVENTS, SEED)
    lines = tuple(sim)
    change = sim.truth["change"]
    return lines, change and change["from_event_index"]


def _run(lines: tuple[bytes, ...]) -> tuple[AuditCore, list[Alert]]:
    core = AuditCore(CoreConfig())
    edges: list[Alert] = []
    for raw in lines:
        core.offer(raw)
        edges.extend(core.drain().alerts)
    core.finish()
    edges.extend(core.drain().alerts)
    return core, edges


def _registry() -> tuple[str, ...]:
    return tuple(DETECTORS)


@functools.cache
def _ran(scenario: str, registry: tuple[str, ...]) -> tuple[AuditCore, tuple[Alert, ...]]:
    """A scenario's core and alert edges (cached per registry, which a test may extend)."""
    core, edges = _run(_stream(scenario)[0])
    return core, tuple(edges)


@functools.cache
def _again(scenario: str, registry: tuple[str, ...]) -> tuple[Alert, ...]:
    """The same stream through a second, fresh core."""
    return tuple(_run(_stream(scenario)[0])[1])


@functools.cache
def _resumed(scenario: str, registry: tuple[str, ...]
             ) -> tuple[AuditCore, AuditCore, tuple[Alert, ...]]:
    """Half the stream, a pickle round-trip of the core, the other half: the core at the
    round-trip, its copy at the end, and the edges of both halves."""
    lines = _stream(scenario)[0]
    half = len(lines) // 2
    core = AuditCore(CoreConfig())
    edges: list[Alert] = []
    for raw in lines[:half]:
        core.offer(raw)
    edges.extend(core.drain().alerts)
    at_half = pickle.dumps(core)
    copy: AuditCore = pickle.loads(at_half)
    for raw in lines[half:]:
        copy.offer(raw)
    copy.finish()
    edges.extend(copy.drain().alerts)
    return pickle.loads(at_half), copy, tuple(edges)


def _kinds(spec: CoreDetectorSpec) -> set[str]:
    return {kind.kind for kind in spec.make.kinds}


def _scenario(name: str) -> str:
    return DETECTORS[name].scenario or "baseline"


def _mine(name: str, edges: tuple[Alert, ...]) -> list[Alert]:
    kinds = _kinds(DETECTORS[name])
    return [a for a in edges if a.kind in kinds]


def check_deterministic(name: str) -> None:
    scenario = _scenario(name)
    assert _mine(name, _again(scenario, _registry())) == \
        _mine(name, _ran(scenario, _registry())[1])


def _figures(core: AuditCore, name: str) -> tuple[object, ...]:
    """What a detector shows of its state: its summary, counters, statistics and watches."""
    detector = core.detectors[name]
    return (detector.summary(), detector.counters(), list(detector.statistics(core.ledger)),
            detector.watches)


def check_pickle_round_trip(name: str) -> None:
    """The core's whole state survives a pickle round-trip in mid-stream and continues as if
    nothing happened: the same edges, and the same figures at the end (compared, not the
    pickles, so that state a pickle drops cannot hide)."""
    scenario = _scenario(name)
    _, copy, edges = _resumed(scenario, _registry())
    whole, reference = _ran(scenario, _registry())
    assert edges == reference
    assert _figures(copy, name) == _figures(whole, name)


def check_quiet_on_baseline(name: str) -> None:
    noisy = _mine(name, _ran("baseline", _registry())[1])
    assert noisy == [], noisy


def check_finds_its_scenario(name: str) -> None:
    spec = DETECTORS[name]
    if spec.scenario is None:
        assert not _kinds(spec), f"{name} raises {_kinds(spec)} but names no scenario to find"
        # nothing to find: its figures must show that the stream reached it
        core = _ran("baseline", _registry())[0]
        fresh = AuditCore(CoreConfig())
        assert _figures(core, name) != _figures(fresh, name), f"{name} was never fed"
        return
    change = _stream(spec.scenario)[1]
    assert change is not None
    found = [a for a in _mine(name, _ran(spec.scenario, _registry())[1])
             if a.state == "firing"]
    assert found, f"{name} raised nothing on {spec.scenario}"
    assert all(a.event_index >= change for a in found), "an alert before the change"


def check_lifecycle(name: str) -> None:
    """Per alert: firing before resolved, alternating; open = fired - resolved, by kind."""
    core, edges = _ran(_scenario(name), _registry())
    states: dict[str, list[str]] = {}
    for a in _mine(name, edges):
        states.setdefault(a.fingerprint, []).append(a.state)
    for fingerprint, seen in states.items():
        assert seen[::2] == ["firing"] * len(seen[::2]), (fingerprint, seen)
        assert seen[1::2] == ["resolved"] * len(seen[1::2]), (fingerprint, seen)
    for kind in _kinds(DETECTORS[name]):
        fired = core.alerts_by_kind.get(kind, 0)
        resolved = core.resolved_by_kind.get(kind, 0)
        assert fired == sum(1 for a in edges if a.kind == kind and a.state == "firing")
        assert fired - resolved == sum(1 for k in core.alert_book.open_keys if k[0] == kind)


def check_no_stray_public_methods(name: str) -> None:
    """Every public method it defines is part of the protocol (``on_placed`` instead of
    ``on_placement`` would never be called)."""
    api = {n for n in dir(CoreDetector) if not n.startswith("_")}
    cls = DETECTORS[name].make
    stray = [n for klass in cls.__mro__ if klass is not CoreDetector and
             issubclass(klass, CoreDetector) for n, v in vars(klass).items()
             if callable(v) and not n.startswith("_") and n not in api]
    assert not stray, f"{name} defines {stray}, which the core never calls"


CHECKS = (check_no_stray_public_methods, check_deterministic, check_pickle_round_trip,
          check_quiet_on_baseline, check_finds_its_scenario, check_lifecycle)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", list(DETECTORS))
def test_registered_detector_keeps_the_contract(name: str, check: object) -> None:
    assert callable(check)
    check(name)


def test_each_kind_is_declared_by_one_detector() -> None:
    class Twin(CoreDetector):
        kinds = (AlertKind("disparity", "PlacewatchTwin", "warning"),)

    with pytest.raises(ValueError, match="declared by another detector"):
        alert_kinds({**DETECTORS, "twin": CoreDetectorSpec(Twin, None)})


# -- a toy detector, added with its class and one registry line -------------------------------

BURST = AlertKind("preemption_burst", "PlacewatchToyPreemptionBurst", "warning")


class PreemptionBurst(CoreDetector):
    """Toy: a group whose share of its decisions preempted is over twice the rest's
    (point estimates, at least 300 decisions); resolves below 1.5 times."""

    kinds = (BURST,)

    def evaluate(self, core: CoreView, where: Where) -> Iterator[Edge]:
        for attribute, table in core.ledger.groups.items():
            total_k = sum(s.preempted for s in table.values())
            total_n = sum(s.decisions for s in table.values())
            for name, stats in table.items():
                rest_n = total_n - stats.decisions
                if stats.decisions < 300 or rest_n < 300:
                    continue
                rest = (total_k - stats.preempted) / rest_n
                share = stats.preempted / stats.decisions
                key = ("preemption_burst", attribute, name, "preemption_share")
                if rest > 0 and share > 2 * rest:
                    yield Fire(key, BURST.firing(key, where, value=share, reference=rest,
                                                 summary=f"{attribute}={name} preempted "
                                                 f"{share:.1%} against {rest:.1%}"))
                elif share < 1.5 * rest:
                    yield Resolve(key, share, "back under 1.5 times the rest's share")


@pytest.fixture
def with_toy(monkeypatch: pytest.MonkeyPatch) -> str:
    """The one registry line."""
    monkeypatch.setitem(DETECTORS, "preemption_burst",
                        CoreDetectorSpec(PreemptionBurst, "preemption_concentration"))
    return "preemption_burst"


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_a_toy_detector_is_picked_up_by_the_contract_tests(with_toy: str,
                                                           check: object) -> None:
    assert callable(check)
    check(with_toy)


def test_a_toy_detectors_alerts_reach_the_replay_outputs_and_metrics(
        with_toy: str, tmp_path: Path) -> None:
    from streams.app import create_app
    from streams.settings import Settings
    from streams.sources.files import file_events

    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(_stream("preemption_concentration")[0]) + b"\n")
    create_app(Settings()).replay(file_events([events]), tmp_path / "out")
    lines = [json.loads(x) for x in (tmp_path / "out" / "alerts.jsonl").read_text().splitlines()]
    toy = [a for a in lines if a["kind"] == "preemption_burst"]
    assert toy and toy[0]["alert"] == "PlacewatchToyPreemptionBurst"
    assert toy[0]["severity"] == "warning" and toy[0]["state"] == "firing"
    prom = (tmp_path / "out" / "metrics.prom").read_text()
    fired = sum(1 for a in toy if a["state"] == "firing")
    assert f'placewatch_alerts_total{{kind="preemption_burst"}} {fired:.1f}' in prom
    # the findings series list the kinds of the core that ran (not those known at import)
    assert 'placewatch_findings_unresolved{kind="preemption_burst",state="open"}' in prom
