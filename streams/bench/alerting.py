"""Alerting benchmarks: what a scrape costs as groups multiply, and how long an alert takes
from its event's arrival to Alertmanager on the direct path.

* **Scrape.** The collector renders every family at scrape time, so its cost grows with the
  tracked groups (collection plus :func:`streams.exposition.render`, what ``/metrics``
  serves). A core that has seen decisions for ``groups`` teams (every watch warmed up) is
  scraped ``repeats`` times; the median is compared with an empty core's scrape in the same
  run.
* **Delivery.** A live :meth:`~streams.app.Placewatch.run_live` (metrics server, run
  directory, audit worker, durable outbox: the service as deployed) reads a paced stream in
  which every ``probe_every``-th placement carries an override already past its expiry: each
  one fires its own ``override_expired`` alert at once. An HTTP receiver on 127.0.0.1 speaking
  Alertmanager's ``POST /api/v2/alerts`` records when each alert first arrives. Latency is that
  time minus the time the probe event was handed to the pipeline.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson

from simulator import SCENARIOS, Simulation
from streams.app import create_app
from streams.exposition import render
from streams.settings import load_settings

__all__ = ["DeliveryResult", "ScrapeResult", "delivery_latency", "scrape_cost"]


@dataclass(frozen=True, slots=True)
class ScrapeResult:
    groups: int
    series: int
    empty_s: float
    loaded_s: float


def _team_events(groups: int, per_group: int) -> Iterator[bytes]:
    start = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    for i in range(groups * per_group):
        at = (start + dt.timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
        yield orjson.dumps({
            "event_type": "placement", "schema_version": 1, "decision_id": f"d-{i}",
            "job_id": f"j-{i}", "decided_at": at, "submitted_at": at,
            "attributes": {"team": f"team-{i % groups}", "region": f"r{i % 4}"},
            "job": {"job_class": "batch", "priority": i % 3, "requested": {"cpu": 4}},
            "decision": {"action": "place", "tier": "spot" if i % 3 else "on_demand",
                         "price_per_hour": 0.1 + (i % 7) / 100},
        })


def scrape_cost(groups: int = 1000, per_group: int = 60, repeats: int = 15) -> ScrapeResult:
    """Median seconds of one scrape of an empty core and of one tracking ``groups`` teams."""
    settings = load_settings(environ={}, overrides={"max_groups_per_attribute": groups})
    empty = create_app(settings)
    loaded = create_app(settings)
    for raw in _team_events(groups, per_group):
        loaded.core.offer(raw)
    loaded.core.finish()
    times: dict[str, list[float]] = {"empty": [], "loaded": []}
    body = b""
    for _ in range(repeats):  # interleaved, so both see the same machine load
        for name, app in (("empty", empty), ("loaded", loaded)):
            began = time.perf_counter()
            body = render(app.registry)
            times[name].append(time.perf_counter() - began)
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return ScrapeResult(groups, series, statistics.median(times["empty"]),
                        statistics.median(times["loaded"]))


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    probes: int
    delivered: int
    latencies_s: list[float]
    events: int
    seconds: float

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _AlertmanagerStandIn:
    """Records the first arrival time of every alert fingerprint POSTed to /api/v2/alerts."""

    def __init__(self) -> None:
        self.first_seen: dict[str, float] = {}
        lock = threading.Lock()
        seen = self.first_seen

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                now = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    for alert in json.loads(body):
                        seen.setdefault(alert["labels"]["fingerprint"], now)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _probed(events: int, seed: int, probe_every: int, rate: float,
            arrived: dict[int, float]) -> Iterator[tuple[str, bytes]]:
    """Baseline events paced at ``rate`` per second; every ``probe_every``-th placement
    carries its own expired override. Records when each probe was handed on."""
    started = time.monotonic()
    placements = 0
    for index, raw in enumerate(Simulation(SCENARIOS["baseline"], events, seed)):
        wait = index / rate - (time.monotonic() - started)
        if wait > 0:
            time.sleep(wait)
        if b'"placement"' in raw[:40]:
            placements += 1
            if placements % probe_every == 0:
                event = orjson.loads(raw)
                event["override"] = {"by": f"probe-{index}",
                                                 "reason": "latency probe",
                                                 "expires_at": "2020-01-01T00:00:00Z"}
                raw = orjson.dumps(event)
                arrived[index] = time.time()
        yield f"bench:{index}", raw


def delivery_latency(events: int = 30_000, rate: float = 2_000.0, probe_every: int = 50,
                     seed: int = 1) -> DeliveryResult:
    """Event-to-Alertmanager latency of the direct path, through the service as it runs."""
    receiver = _AlertmanagerStandIn()
    settings = dataclasses.replace(
        load_settings(environ={}, overrides={"metrics_port": 0}),
        alertmanager_urls=(receiver.url,), alertmanager_resend_s=60.0)
    app = create_app(settings)
    arrived: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "run"
        logger = logging.getLogger("placewatch")
        level = logger.level
        logger.setLevel(logging.ERROR)  # one warning line per probe alert is not the point
        try:
            began = time.monotonic()
            app.run_live(_probed(events, seed, probe_every, rate, arrived), out)
            seconds = time.monotonic() - began
        finally:
            logger.setLevel(level)
        fired = {}
        for line in (out / "alerts.jsonl").read_text().splitlines():
            alert = json.loads(line)
            if alert["state"] == "firing" and alert["kind"] == "override_expired":
                fired[alert["event_index"]] = alert["fingerprint"]
    receiver.server.shutdown()
    latencies = [receiver.first_seen[fp] - arrived[index]
                 for index, fp in fired.items() if index in arrived and fp in receiver.first_seen]
    return DeliveryResult(len(arrived), len(latencies), latencies, events, seconds)
