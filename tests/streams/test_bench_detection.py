"""The peers' verdict in bench detection: placewatch against the best River setting."""

from __future__ import annotations

from streams.bench.detection import OWN, ScenarioScore, peer_comparison, peer_verdict


def _row(detector: str, scenario: str, detected: int = 20, p90: float | None = 400.0,
         false_alarms: int = 0) -> ScenarioScore:
    return ScenarioScore(scenario, detector, 20, 2_000_000, detected, 300.0, p90, detected, 0,
                         false_alarms, 0, 0)


def _rows(own: tuple[int, float, int], *peers: tuple[str, int, float, int]
          ) -> list[ScenarioScore]:
    rows = [_row(OWN, "equity_drift", own[0], own[1]), _row(OWN, "baseline",
                                                             false_alarms=own[2])]
    for name, detected, p90, alarms in peers:
        rows += [_row(name, "equity_drift", detected, p90),
                 _row(name, "baseline", false_alarms=alarms)]
    return rows


def test_a_river_setting_as_fast_and_as_quiet_as_placewatch_fails_the_check() -> None:
    # faster but louder, quieter but slower, or finding less: none beats placewatch
    rows = _rows((20, 400.0, 1), ("fast", 20, 300.0, 3), ("careful", 20, 900.0, 0),
                 ("blind", 12, 100.0, 0))
    ahead, said = peer_verdict(rows)  # type: ignore[misc]
    assert ahead and "no River setting of 3 is as fast and as quiet" in said
    # as found, faster and no louder: it does, and is named
    behind, said = peer_verdict(_rows((20, 449.0, 5), ("careful", 20, 1119.0, 1),  # type: ignore[misc]
                                      ("tuned", 20, 401.0, 2)))
    assert not behind and "as fast and as quiet: tuned (20/20, p90 401, 2 false alarms)" in said
    assert "careful" not in said
    tie, _ = peer_verdict(_rows((20, 400.0, 1), ("twin", 20, 400.0, 1)))  # type: ignore[misc]
    assert not tie
    assert peer_verdict(_rows((20, 400.0, 1))) is None  # no peers, no verdict
    lines = peer_comparison(rows)
    assert lines[0] == ("vs fast: equity_drift p90 400 against 300 (behind), found 20 against "
                        "20, baseline false alarms 1 against 3 (ahead)")
    assert len(lines) == 3


def test_the_scaling_run_adds_sparse_groups_that_leave_detection_alone() -> None:
    """--sparse-groups: every placement gets one of N 'project' values by job (outcomes are
    left as they are), and the equity-drift hit on the same stream is unchanged by 300 such
    groups, which cannot alarm and so spend none of the false-alarm budget."""
    import orjson

    from simulator import SCENARIOS, Simulation
    from streams.bench.detection import SPARSE_ATTRIBUTE, score_run, with_sparse_groups

    lines = list(Simulation(SCENARIOS["equity_drift"], 20_000, seed=1))
    added = [orjson.loads(raw) for raw in with_sparse_groups(lines, 300)]
    placements = [e for e in added if e["event_type"] == "placement"]
    projects = {e["attributes"][SPARSE_ATTRIBUTE] for e in placements}
    assert 250 <= len(projects) <= 300
    assert all(SPARSE_ATTRIBUTE not in e.get("attributes", {}) for e in added
               if e["event_type"] == "outcome")
    plain = score_run("equity_drift", 1, 40_000)
    sparse = score_run("equity_drift", 1, 40_000, sparse_groups=300)
    assert plain.hit_delay is not None
    assert sparse.hit_delay == plain.hit_delay
    assert sparse.false_alarms == plain.false_alarms
