"""The Grafana dashboards: regenerated identically, round-tripped through the SDK's own model,
naming only defined metrics, documented panel by panel, and every query returning series from
a real Prometheus scraping a live placewatch on simulated data."""

from __future__ import annotations

import json
import math
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dashboards.build import DASHBOARDS, JSON_DIR, build_all, main
from dashboards.prometheus import Prometheus
from simulator import SCENARIOS, Simulation
from streams import metric_names
from streams.bench.kafka_broker import MockCluster, produce
from tests.alerts.stack import Receiver, free_port, prometheus, start_run, stop_run
from tests.helpers import ROOT, placewatch

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


def _instant() -> set[str]:
    """Expressions Grafana runs as instant queries (the rest it runs over the time range)."""
    return {target["expr"] for board in _boards().values() for panel in _panels(board)
            for target in panel["targets"] if target.get("instant")}


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
    return (expr.replace("$__rate_interval", "30s").replace("$__range", "60s")
            .replace("$attribute", "team").replace("$group", ".*").replace("$compare", "15s"))


@dataclass(frozen=True)
class Live:
    url: str
    started: float


@pytest.fixture(scope="module")
def live_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A live placewatch (a drift that starts and stays, direct delivery to a receiver
    standing in for Alertmanager) and a Kafka worker on a real Kafka-protocol broker (a
    finite stream whose alerts fire and resolve, so findings resolve), both scraped every
    second by a real Prometheus."""
    root = tmp_path_factory.mktemp("dashboards")
    receiver = Receiver()
    port, kafka_port = free_port(), free_port()
    config = root / "placewatch.toml"
    config.write_text(f'metrics_port = {port}\nalertmanager_urls = ["{receiver.url}/am"]\n')
    kafka_config = root / "kafka.toml"
    kafka_config.write_text(f"metrics_port = {kafka_port}\n")
    broker = MockCluster()
    procs = []
    try:
        broker.create_topic("placewatch.events", 2)
        # a drift that fires and is undone, so findings resolve (the remediation age)
        produce(broker.bootstrap, "placewatch.events",
                ((json.loads(raw)["decision_id"].encode(), raw) for raw in Simulation(
                    SCENARIOS["equity_drift"], 80_000, seed=5, revert_at=40_000)))
        # the demo's pace: its first alert comes about 9,000 events after the change
        procs.append(start_run(root / "run", config, root / "run.log", "--scenario",
                               "equity_drift"))
        procs.append(start_run(root / "kafka", kafka_config, root / "kafka.log", "--source",
                               broker.url))
        with prometheus(root / "prom", [f"127.0.0.1:{port}", f"127.0.0.1:{kafka_port}"],
                        receiver.url) as url:
            yield Live(url, time.time())
    finally:
        for proc in procs:
            stop_run(proc)
        broker.close()
        receiver.close()


def test_every_query_returns_series_from_a_real_prometheus(live_prometheus: Live) -> None:
    """Each query as Grafana runs it, until each has returned series: instant for stat,
    bar-gauge and table panels, over the time since the run started for time series."""
    client = Prometheus(live_prometheus.url)
    queries = _queries()
    instant = _instant()
    missing: list[str] = []
    answered_once: set[str] = set()

    def returns(expr: str) -> bool:  # a series with a finite value: NaN is no answer
        now = time.time()
        if expr in instant:
            return any(math.isfinite(float(s["value"][1]))
                       for s in client.instant(_substitute(expr), now))
        return any(math.isfinite(float(v)) for s in client.range(
            _substitute(expr), live_prometheus.started, now, 2) for _, v in s["values"])

    def answered() -> bool:
        answered_once.update(expr for _, _, expr in queries
                             if expr not in answered_once and returns(expr))
        missing[:] = [f"{board} / {title}" for board, title, expr in queries
                      if expr not in answered_once]
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
            url = (f"{live_prometheus.url}/api/v1/label/{label}/values?"
                   + urllib.parse.urlencode({"match[]": selector}))
            with urllib.request.urlopen(url, timeout=30) as answer:
                values = json.loads(answer.read())["data"]
            assert values, variable["name"]


def test_the_pictures_draw_every_panel_with_data(live_prometheus: Live, tmp_path: Path) -> None:
    """``placewatch dashboards render`` against the same Prometheus: one PNG per dashboard,
    every panel with series (it exits 1 otherwise), of Grafana's width and the grid's height."""
    from PIL import Image

    deadline = time.monotonic() + 600
    while True:
        since = max(10, round(time.time() - live_prometheus.started))
        done = placewatch("--quiet", "dashboards", "render", "--prometheus",
                          live_prometheus.url, "--out", str(tmp_path), "--range", f"{since}s",
                          "--scrape-interval", "1s", "--var", "attribute=team", "--var",
                          "compare=15s", "--require-data")
        if done.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all("no data" not in line for line in lines), lines
    for board in _boards().values():
        path = tmp_path / f"{board['uid']}.png"
        assert f"{path}  " in done.stdout
        panels = sum(1 for _ in _panels(board))
        assert f"{panels} of {panels} panels with data" in done.stdout
        with Image.open(path) as image:
            rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in board["panels"])
            assert image.size == (1600, round((rows * 0.32 + 0.9) * 100))
            colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
            assert colours is not None and len(colours) > 50  # drawn, not a blank page


def test_variables_default_to_what_prometheus_has(live_prometheus: Live, tmp_path: Path
                                                  ) -> None:
    """Without --var, $attribute is the first value Prometheus lists (a GET of label values,
    the only method Prometheus serves them with)."""
    done = placewatch("--quiet", "dashboards", "render", "--prometheus", live_prometheus.url,
                      "--out", str(tmp_path), "--range", "60s", "--dashboard", "placewatch-sre")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{tmp_path / 'placewatch-sre.png'}  ")


class _NotPrometheus(BaseHTTPRequestHandler):
    """A web server that is not Prometheus: an HTML page for every request."""

    def _page(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html>login</html>")

    do_GET = do_POST = _page

    def log_message(self, *args: object) -> None:
        return None


class _BrokenPrometheus(BaseHTTPRequestHandler):
    """Answers like Prometheus, but every series lacks its value."""

    def do_GET(self) -> None:  # label values
        self._json({"status": "success", "data": ["team"]})

    def do_POST(self) -> None:  # queries
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._json({"status": "success", "data": {"resultType": "vector",
                                                  "result": [{"metric": {"a": "b"}}]}})

    def _json(self, body: object) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    def log_message(self, *args: object) -> None:
        return None


def test_render_errors_are_one_clear_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), handler)
               for handler in (_NotPrometheus, _BrokenPrometheus)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    html, broken = (f"http://127.0.0.1:{server.server_address[1]}" for server in servers)
    for args, expected in (
            (["--prometheus", html], "something other than JSON: is it Prometheus?"),
            (["--prometheus", broken], "with a malformed series (KeyError"),
            (["--prometheus", f"http://127.0.0.1:{port}"], "cannot reach Prometheus"),
            (["--prometheus", "ftp://x"], "is not an http(s) URL"),
            (["--prometheus", "http://127.0.0.1:1", "--range", "soon"], "is not a duration"),
            (["--prometheus", "http://127.0.0.1:1", "--dashboard", "nope"], "no dashboard nope"),
            (["--prometheus", "http://127.0.0.1:1", "--var", "attribute"], "is not NAME=VALUE")):
        done = placewatch("--quiet", "dashboards", "render", "--out", str(tmp_path), *args)
        assert done.returncode != 0, args
        assert expected in done.stderr and "Traceback" not in done.stderr, done.stderr
    for server in servers:
        server.shutdown()
        server.server_close()
