"""The in-process collector: its families' labels, and label cardinality capped by settings."""

from __future__ import annotations

import re

from prometheus_client import generate_latest

from streams import metric_names as m
from streams.app import create_app
from streams.settings import load_settings
from tests.helpers import line, placement


def _scrape(**config: object) -> str:
    app = create_app(load_settings(environ={}, overrides={"evaluate_every": 10, **config}))
    for i in range(300):
        event = placement(f"d-{i}", team=f"t{i % 12}", tier="spot" if i % 3 else "on_demand")
        event["attributes"].update({f"k{j}": f"v{i % 5}" for j in range(6)})
        app.core.process(line(event))
    app.core.finish()
    return generate_latest(app.registry).decode()


def _rows(text: str, family: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of ``family``: its labels and value."""
    return [(dict(re.findall(r'(\w+)="([^"]*)"', labels)), float(value))
            for labels, value in re.findall(rf"^{family}{{([^}}]*)}} (\S+)$", text, re.M)]


def _label_values(text: str, family: str, label: str) -> dict[str, set[str]]:
    """attribute -> values of ``label`` seen in ``family``."""
    out: dict[str, set[str]] = {}
    for labels, _ in _rows(text, family):
        out.setdefault(labels["attribute"], set()).add(labels[label])
    return out


def test_groups_and_attributes_are_capped_by_configuration() -> None:
    text = _scrape(max_groups_per_attribute=4, max_attributes=3)
    groups = _label_values(text, f"{m.GROUP_DECISIONS}_total", "group")
    # at most max_attributes attributes, each with at most max_groups named groups + overflow
    assert len(groups) == 3
    assert groups["team"] == {"t0", "t1", "t2", "t3", "__other__"}
    for values in groups.values():
        assert len(values - {"__other__"}) <= 4
    tracked = _rows(text, m.TRACKED_GROUPS)
    assert len(tracked) == 3 and all(value <= 5 for _, value in tracked)
    overflow = {labels["attribute"]: value
                for labels, value in _rows(text, f"{m.GROUP_OVERFLOW}_total")}
    assert overflow["team"] == 300 * 8 / 12  # t4..t11


def test_every_family_has_its_documented_labels() -> None:
    text = _scrape()
    expected = {
        f"{m.EVENTS}_total": {"kind"},
        f"{m.DEAD_LETTERS}_total": {"reason"},
        f"{m.ALERTS}_total": {"kind"},
        f"{m.ALERTS_RESOLVED}_total": {"kind"},
        m.ALERTS_OPEN: {"kind"},
        f"{m.GROUP_DECISIONS}_total": {"attribute", "group", "action"},
        m.GROUP_RATE: {"attribute", "group", "metric"},
        m.PARITY_RATIO: {"attribute", "metric"},
        m.TRACKED_GROUPS: {"attribute"},
    }
    for family, labels in expected.items():
        rows = _rows(text, family)
        assert rows, family
        for row, _ in rows:
            assert set(row) == labels, (family, row)


def test_open_alerts_carry_their_figures_and_detectors_their_evidence() -> None:
    """On a drifting stream: each open alert's value, reference and firing time are exported
    under its fingerprint; every warmed-up watch exports its statistic below the family
    threshold unless its alert is open; rate intervals hold their rate."""
    from simulator import SCENARIOS, Simulation

    app = create_app(load_settings(environ={}))
    for raw in Simulation(SCENARIOS["equity_drift"], 40_000, seed=1):
        app.core.process(raw)
    text = generate_latest(app.registry).decode()
    book = app.core.alert_book.open_alerts()
    assert book
    values = {row["fingerprint"]: v for row, v in _rows(text, m.ALERT_VALUE)}
    fired_at = {row["fingerprint"]: v for row, v in _rows(text, m.ALERT_FIRED_AT)}
    for _, alert, since in book:
        assert values[alert.fingerprint] == alert.value
        assert fired_at[alert.fingerprint] == since
    threshold = float(re.search(rf"^{m.DRIFT_THRESHOLD} (\S+)$", text, re.M)[1])
    assert threshold == app.core.family_threshold > 0
    statistics = _rows(text, m.DRIFT_STATISTIC)
    assert {row["watch"] for row, _ in statistics} == {"equity_drift", "forecast_drift",
                                                        "wait_drift"}
    watched = ("equity_drift", "wait_drift")
    alarmed = {(a.kind, a.attribute, a.group, a.metric) for _, a, _ in book if a.kind in watched}
    # a group reported inside another's alert (the same decisions) is in its alarm too
    alarmed |= {(a.kind, s["attribute"], s["group"], a.metric) for _, a, _ in book
                if a.kind in watched for s in a.details.get("same_population", [])}
    for row, value in statistics:
        if row["watch"] in watched:
            key = (row["watch"], row["attribute"], row["group"], row["metric"])
            assert (row["phase"] == "recovery") == (key in alarmed), row
            assert 0 <= value <= threshold, row
    lower = {tuple(r.values()): v for r, v in _rows(text, m.GROUP_RATE_LOWER)}
    upper = {tuple(r.values()): v for r, v in _rows(text, m.GROUP_RATE_UPPER)}
    rates = _rows(text, m.GROUP_RATE)
    assert rates and len(lower) == len(rates) == len(upper)
    for row, rate in rates:
        key = tuple(row.values())
        assert lower[key] <= rate <= upper[key]


def test_the_served_exposition_is_byte_for_byte_the_library_s() -> None:
    """streams.exposition.render (what /metrics serves) equals prometheus_client's own
    generate_latest, on values that need escaping too, and Prometheus's parser reads it."""
    from prometheus_client.parser import text_string_to_metric_families

    from streams.exposition import render

    app = create_app(load_settings(environ={}, overrides={"evaluate_every": 10}))
    for i, team in enumerate(['quote"d', "back\\slash", "new\nline", "ünïcode", "plain"] * 40):
        app.core.process(line(placement(f"d-{i}", team=team, tier="spot" if i % 3 else None)))
    app.core.process(b"not json")
    app.core.finish()
    body = render(app.registry)
    assert body == generate_latest(app.registry)
    families = {f.name for f in text_string_to_metric_families(body.decode())}
    assert {m.EVENTS, m.GROUP_RATE, m.DEAD_LETTERS} <= families


def test_counters_the_dashboards_take_increase_of_start_at_zero() -> None:
    """Every tracked group has its spend series for both tiers and its group-flip series
    before it has any, so Prometheus's increase() counts their first placements and flips."""
    app = create_app(load_settings(environ={}, overrides={"evaluate_every": 10,
                                                          "audit_sample_rate": 0.0}))
    for i in range(40):  # cheap tiers only, nothing explained
        app.core.process(line(placement(f"d-{i}", team=f"t{i % 4}", tier="spot")))
    app.core.finish()
    text = generate_latest(app.registry).decode()
    priced = {(r["group"], r["tier"]): v
              for r, v in _rows(text, f"{m.GROUP_PRICED}_total") if r["attribute"] == "team"}
    assert priced == {**{(f"t{g}", "cheap"): 10.0 for g in range(4)},
                      **{(f"t{g}", "premium"): 0.0 for g in range(4)}}
    flips = {(r["attribute"], r["group"]): v
             for r, v in _rows(text, f"{m.AUDIT_GROUP_FLIP_CHECKS}_total")}
    assert {g for a, g in flips if a == "team"} == {f"t{g}" for g in range(4)}
    assert set(flips.values()) == {0.0}
