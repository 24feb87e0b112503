"""The Grafana dashboards: regenerated identically, round-tripped through the SDK's own model,
naming only defined metrics, documented panel by panel, and every query returning series from
a real Prometheus scraping a live placewatch on simulated data."""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from dashboards.build import DASHBOARDS, JSON_DIR, build_all, main
from streams import metric_names
from tests.alerts.stack import Receiver, free_port, prometheus, start_run, stop_run
from tests.helpers import ROOT

_SUFFIXES = ("_total", "_bucket", "_sum", "_count")


def _boards() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(JSON_DIR.glob("*.json"))}


def _panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        if panel["type"] != "row":
            yield panel


def _queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expression) of every query."""
    return [(name, panel["title"], target["expr"]) for name, board in _boards().items()
            for panel in _panels(board) for target in panel["targets"]]


def test_the_committed_json_is_what_the_code_builds() -> None:
    assert sorted(p.name for p in JSON_DIR.glob("*.json")) == sorted(build_all())
    assert main(["--check"]) == 0
    for name, text in build_all().items():
        assert (JSON_DIR / name).read_text() == text


def test_the_json_round_trips_through_the_sdk_model() -> None:
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard

    register_default_plugins()
    for path in JSON_DIR.glob("*.json"):
        text = path.read_text()
        model = Dashboard.from_json(json.loads(text))
        assert JSONEncoder(sort_keys=True, indent=2).encode(model) + "\n" == text, path.name


def test_every_panel_names_only_defined_metrics() -> None:
    defined = {v for k, v in vars(metric_names).items() if k.isupper() and k != "PREFIX"}
    queries = _queries()
    assert len(queries) >= 30
    for board, title, expr in queries:
        used = re.findall(r"\b(placewatch_[a-z0-9_]+)", expr)
        assert used, (board, title)
        for name in used:
            base = next((name.removesuffix(s) for s in _SUFFIXES if name.endswith(s)), name)
            assert name in defined or base in defined, (board, title, name)


def test_every_panel_has_a_unit_a_description_and_working_runbook_links() -> None:
    for name, board in _boards().items():
        assert board["uid"] == name and board["description"]
        variables = {v["name"] for v in board["templating"]["list"]}
        assert {"datasource"} <= variables
        for panel in _panels(board):
            assert panel["description"], (name, panel["title"])
            assert panel["fieldConfig"]["defaults"]["unit"], (name, panel["title"])
            assert panel["datasource"]["uid"] == "${datasource}"
            for link in panel.get("links", []):
                assert (ROOT / link["url"]).is_file(), link["url"]
    sre = _boards()["placewatch-sre"]
    linked = {link["url"] for panel in _panels(sre) for link in panel.get("links", [])}
    assert "alerts/runbooks/PlacewatchEquityDrift.md" in linked


def test_three_dashboards_for_three_audiences() -> None:
    assert [d.uid for d in DASHBOARDS] == ["placewatch-sre", "placewatch-leadership",
                                           "placewatch-reviewer"]


def _substitute(expr: str) -> str:
    """Grafana's variables as a viewer would have them set."""
    return (expr.replace("$__rate_interval", "30s").replace("$attribute", "team")
            .replace("$group", ".*").replace("$compare", "15s"))


@pytest.fixture(scope="module")
def live_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A live placewatch (a drift that starts and is undone, direct delivery to a receiver
    standing in for Alertmanager) scraped every second by a real Prometheus."""
    root = tmp_path_factory.mktemp("dashboards")
    receiver = Receiver()
    port = free_port()
    config = root / "placewatch.toml"
    config.write_text(f'metrics_port = {port}\nalertmanager_urls = ["{receiver.url}/am"]\n')
    proc = start_run(root / "run", config, root / "run.log", "--scenario", "equity_drift",
                     "--max-events", "5000000", "--revert-at", "2100000", "--speedup",
                     "200000")
    try:
        with prometheus(root / "prom", f"127.0.0.1:{port}", receiver.url) as url:
            yield url
    finally:
        stop_run(proc)
        receiver.close()


def _query(url: str, expr: str) -> list[Any]:
    body = urllib.parse.urlencode({"query": expr}).encode()
    with urllib.request.urlopen(f"{url}/api/v1/query", data=body, timeout=30) as answer:
        reply = json.loads(answer.read())
    assert reply["status"] == "success", (expr, reply)
    return list(reply["data"]["result"])


def test_every_query_returns_series_from_a_real_prometheus(live_prometheus: str) -> None:
    queries = _queries()
    missing: list[str] = []

    def answered() -> bool:
        missing[:] = [f"{board} / {title}" for board, title, expr in queries
                      if not _query(live_prometheus, _substitute(expr))]
        return not missing

    # wait for enough history: rates, the comparison offset, warmed-up drift watches
    deadline = time.monotonic() + 600
    while not answered():
        assert time.monotonic() < deadline, f"queries still empty: {'; '.join(missing)}"
        time.sleep(1)
    for board in _boards().values():
        for variable in board["templating"]["list"]:
            if variable["type"] != "query":
                continue
            match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"])
            assert match, variable["query"]
            selector, label = _substitute(match[1]), match[2]
            url = (f"{live_prometheus}/api/v1/label/{label}/values?"
                   + urllib.parse.urlencode({"match[]": selector}))
            with urllib.request.urlopen(url, timeout=30) as answer:
                values = json.loads(answer.read())["data"]
            assert values, variable["name"]
