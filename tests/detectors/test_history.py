"""History windows: cut by event time, and together exactly the core's totals."""

from __future__ import annotations

from collections import defaultdict

from detectors.config import CoreConfig
from detectors.history import GROUP_COUNTS, GROUP_SUMS, GroupWindow, StreamWindow
from detectors.pipeline import AuditCore
from simulator import SCENARIOS, Simulation
from tests.helpers import line, outcome, placement


def test_windows_follow_event_time_and_the_current_event_opens_the_next() -> None:
    core = AuditCore(CoreConfig(evaluate_every=1000, attributes=("team", "region")))
    core.process(line(placement("d-1", team="a", at="2026-11-02T08:15:00Z")))
    core.process(line(placement("d-2", team="b", at="2026-11-02T08:59:59Z")))
    core.process(line(placement("d-3", team="a", at="2026-11-02T09:00:00Z", tier="on_demand")))
    core.process(line(outcome("d-1", at="2026-11-02T11:30:00Z")))
    assert core.drain().history[-1].start == "2026-11-02T09:00:00Z"
    core.finish()
    windows = core.drain().history
    first = [w for w in windows if isinstance(w, GroupWindow) and w.attribute == "team"]
    assert [(w.start, w.group, w.counts.get("decisions", 0), w.counts.get("outcomes", 0))
            for w in first] == [("2026-11-02T11:00:00Z", "a", 0, 1)]
    stream = [w for w in windows if isinstance(w, StreamWindow)]
    assert stream[-1].counts == {"events_in": 1, "outcomes": 1, "joined": 1}


def test_the_windows_add_up_to_the_totals_of_a_whole_run() -> None:
    core = AuditCore(CoreConfig(audit_sample_rate=0.0, shadow_train_rate=0.0,
                                audit_always_overrides=False))
    windows = []
    for raw in Simulation(SCENARIOS["override_leak"], 20_000, seed=2):
        core.offer(raw)
        windows.extend(core.drain().history)
    core.finish()
    windows.extend(core.drain().history)
    totals: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    stream: dict[str, int] = defaultdict(int)
    overridden = 0
    starts = []
    for w in windows:
        starts.append(w.start)
        if isinstance(w, GroupWindow):
            for key, value in {**w.counts, **w.sums}.items():
                totals[(w.attribute, w.group)][key] += value
            assert sum(w.waits.values()) == w.counts.get("wait_n", 0)
        else:
            for key, value in w.counts.items():
                stream[key] += value
            overridden += sum(o.placements for o in w.overrides) + w.overrides_other
    assert starts == sorted(starts)  # in event-time order
    forecasts = 0
    for attribute, table in core.ledger.groups.items():
        for name, stats in table.items():
            got = totals[(attribute, name)]
            watches = stats.forecast or {}
            expected = {
                "runtime_res_n": watches["runtime"].count if watches else 0,
                "cost_res_n": watches["cost"].count if watches else 0,
                "runtime_res_sum": watches["runtime"].sum if watches else 0.0,
                "runtime_res_sq": watches["runtime"].sq_sum if watches else 0.0,
                "cost_res_sum": watches["cost"].sum if watches else 0.0,
                "cost_res_sq": watches["cost"].sq_sum if watches else 0.0}
            forecasts += expected["runtime_res_n"]
            for key in GROUP_COUNTS:
                want = expected[key] if key in expected else getattr(stats, key)
                assert got.get(key, 0) == want, (attribute, name, key)
            for key in GROUP_SUMS:
                want = expected[key] if key in expected else getattr(stats, key)
                assert abs(got.get(key, 0.0) - want) < 1e-6 * (1 + abs(want)), (
                    attribute, name, key)
    assert forecasts > 0
    assert stream["events_in"] == core.events_in == 20_000
    for key in ("placements", "outcomes", "duplicates", "joined", "orphaned_outcomes"):
        assert stream[key] == getattr(core, key), key
    assert overridden > 0


def test_history_off() -> None:
    core = AuditCore(CoreConfig(history_window_s=0))
    core.process(line(placement("d-1")))
    core.finish()
    assert core.drain().history == []
