"""The durable alert outbox: what Alertmanager and webhooks receive, retries while they are
down, re-sends while firing, refusals, credentials, and nothing lost across a restart."""

from __future__ import annotations

import datetime as dt
import json
import socketserver
import threading
import time
import urllib.error
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from detectors.alerts import Alert, fingerprint
from streams.sinks.base import Batch
from streams.sinks.outbox import AlertOutbox
from streams.sinks.receivers import Target

AM = "http://user:secret@127.0.0.1:9/am"
HOOK = "http://127.0.0.1:9/hook/T000/SECRET"


class Network:
    """Stands in for the network: records every POST, or refuses while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.posts: list[tuple[str, Any, dict[str, str]]] = []
        self.lock = threading.Lock()

    def __call__(self, target: Target, url: str, payload: bytes,
                 headers: Mapping[str, str]) -> None:
        if self.down:
            raise urllib.error.URLError("connection refused")
        with self.lock:
            self.posts.append((url, json.loads(payload), dict(headers)))

    def to(self, url: str) -> list[Any]:
        with self.lock:
            return [body for target, body, _ in self.posts if target == url]


def _alert(state: str, group: str = "genomics", kind: str = "equity_drift") -> Alert:
    key = (kind, "team", group, "preferred_rate")
    return Alert("PlacewatchEquityDrift", state, fingerprint(key), *key, severity="warning",
                 value=0.38, reference=0.61, decision_id="d-9", event_index=9,
                 at="2026-11-02T08:15:00.000Z", summary=f"team={group}: drifted.")


def _batch(*alerts: Alert) -> Batch:
    return Batch(0, 1, [], list(alerts), [], received_at=time.time())


def _until(check: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.02)


def _outbox(path: Path, network: Network, **kw: Any) -> AlertOutbox:
    return AlertOutbox(path / "alert_outbox.sqlite", [AM], [HOOK], post=network, fsync=False,
                       **kw).start()


AM_API = "http://127.0.0.1:9/am/api/v2/alerts"  # credentials moved out of the URL
HOOK_URL = "http://127.0.0.1:9/hook/T000/SECRET"


def test_alertmanager_gets_the_rule_labels_then_the_resolution(tmp_path: Path) -> None:
    network = Network()
    box = _outbox(tmp_path, network, extra_labels={"cluster": "eu-1"}, resolve_grace_s=30)
    try:
        box.write(_batch(_alert("firing")))
        box.durable()
        _until(lambda: len(network.to(AM_API)) == 1)
        [sent] = network.to(AM_API)[0]
        assert sent["labels"] == {
            "alertname": "PlacewatchEquityDrift", "severity": "warning",
            "kind": "equity_drift", "attribute": "team", "group": "genomics",
            "metric": "preferred_rate", "fingerprint": _alert("firing").fingerprint,
            "cluster": "eu-1"}
        assert sent["annotations"]["runbook_url"] == \
            "alerts/runbooks/PlacewatchEquityDrift.md"
        assert sent["annotations"]["decision_id"] == "d-9"
        assert sent["endsAt"] > sent["startsAt"]  # firing: valid for four resend intervals
        box.write(_batch(_alert("resolved")))
        box.durable()
        _until(lambda: len(network.to(AM_API)) == 2)
        [ended] = network.to(AM_API)[1]
        assert ended["labels"] == sent["labels"] and ended["startsAt"] == sent["startsAt"]
        # resolved: it ends a grace period after the resolution (the rule's end comes first)
        end = dt.datetime.fromisoformat(ended["endsAt"]).timestamp()
        assert time.time() + 20 < end < time.time() + 31
        _until(lambda: box.pending() == 0)
        # the webhook got both edges, in order, as alerts.jsonl lines, with a dedup key
        _until(lambda: len(network.to(HOOK_URL)) == 2)
        assert [edge["state"] for edge in network.to(HOOK_URL)] == ["firing", "resolved"]
        keys = [h["Placewatch-Edge"] for url, _, h in network.posts if url == HOOK_URL]
        assert keys == [f"{sent['labels']['fingerprint']}:firing:9",
                        f"{sent['labels']['fingerprint']}:resolved:9"]
    finally:
        box.close()
    # targets are named, credentials and paths kept out of names and labels
    assert {name: s.endpoint for name, s in box.stats.items()} == {
        "alertmanager-1": "http://127.0.0.1:9", "webhook-1": "http://127.0.0.1:9"}
    assert box.stats["alertmanager-1"].sent == 2


def test_a_firing_alert_is_re_sent_while_it_lasts(tmp_path: Path) -> None:
    network = Network()
    box = _outbox(tmp_path, network, resend_s=1.0)
    try:
        box.write(_batch(_alert("firing")))
        box.durable()
        _until(lambda: len(network.to(AM_API)) >= 3)
        ends = [body[0]["endsAt"] for body in network.to(AM_API)]
        assert ends == sorted(ends) and ends[0] < ends[-1]
    finally:
        box.close()
    assert len(network.to(HOOK_URL)) == 1  # a webhook gets each edge once


def test_fired_and_resolved_in_one_batch_is_a_valid_alert(tmp_path: Path) -> None:
    network = Network()
    box = _outbox(tmp_path, network, resolve_grace_s=0)
    try:
        box.write(_batch(_alert("firing"), _alert("resolved")))
        box.durable()
        _until(lambda: len(network.to(AM_API)) == 1)
        [sent] = network.to(AM_API)[0]
        assert sent["startsAt"] <= sent["endsAt"]  # Alertmanager refuses an end before start
    finally:
        box.close()


def test_nothing_is_lost_while_receivers_are_down_or_across_a_restart(tmp_path: Path) -> None:
    network = Network()
    network.down = True
    box = _outbox(tmp_path, network)
    box.write(_batch(_alert("firing", "a"), _alert("firing", "b")))
    box.durable()
    box.write(_batch(_alert("resolved", "a")))
    box.durable()
    _until(lambda: box.stats["alertmanager-1"].failures >= 1
           and box.stats["webhook-1"].failures >= 1)
    _until(lambda: box.stats["alertmanager-1"].pending == 2)  # a's latest edge and b's
    box.close()
    assert network.posts == []
    # a new process on the same outbox, receivers back
    network.down = False
    again = AlertOutbox(tmp_path / "alert_outbox.sqlite", [AM], [HOOK], post=network,
                        fsync=False)
    assert again.reconcile({_alert("firing", "b").fingerprint}) == 0
    again.start()
    try:
        assert again.first_pass(30)
        _until(lambda: len(network.to(HOOK_URL)) == 3)
        assert [(e["group"], e["state"]) for e in network.to(HOOK_URL)] == \
            [("a", "firing"), ("b", "firing"), ("a", "resolved")]
        _until(lambda: len({a["labels"]["group"] for body in network.to(AM_API)
                            for a in body}) == 2)
        sent = [alert for body in network.to(AM_API) for alert in body]
        # Alertmanager is told each alert's latest edge: a resolved, b still firing
        assert {a["labels"]["group"]: a["annotations"]["description"].split("; ")[1][:6]
                for a in sent} == {"a": "resolv", "b": "firing"}
        _until(lambda: again.pending() == 0)
    finally:
        again.close()


def test_a_restart_resolves_what_alerts_jsonl_does_not_hold_open(tmp_path: Path) -> None:
    network = Network()
    network.down = True
    box = _outbox(tmp_path, network)
    box.write(_batch(_alert("firing", "a")))
    box.close()
    network.down = False
    again = AlertOutbox(tmp_path / "alert_outbox.sqlite", [AM], [], post=network, fsync=False)
    assert again.reconcile(set()) == 1  # the writer stopped before alerts.jsonl had it
    again.start()
    try:
        _until(lambda: bool(network.to(AM_API)))
        assert "resolved on decision" in network.to(AM_API)[0][0]["annotations"]["description"]
    finally:
        again.close()


class _Server:
    """A real HTTP receiver on 127.0.0.1 that answers with ``reply`` (status, raw bytes)."""

    def __init__(self, reply: Callable[[], tuple[Any, ...] | bytes]) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server_self.requests.append((self.path, dict(self.headers), body))
                answer = reply()
                if isinstance(answer, bytes):  # not HTTP at all
                    self.wfile.write(answer)
                    return
                self.send_response(answer[0])
                for name, value in (answer[2] if len(answer) > 2 else {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer[1])))
                self.end_headers()
                self.wfile.write(answer[1])

            def log_message(self, *args: object) -> None:
                return None

        self.server: socketserver.TCPServer = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_over_real_http_credentials_refusals_and_garbage(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    answers = iter([b"garbage\r\n\r\n", (500, b"busy"), (200, b""),  # retried until accepted
                    (400, b"start time must be before end time")])   # refused for good
    server = _Server(lambda: next(answers, (200, b"")))
    am = server.url.replace("http://", "http://alice:s3cret@") + "/"
    box = AlertOutbox(tmp_path / "alert_outbox.sqlite", [am], [], fsync=False).start()
    try:
        box.write(_batch(_alert("firing")))
        box.durable()
        _until(lambda: box.stats["alertmanager-1"].sent == 1, 120)
        assert box.stats["alertmanager-1"].failures == 2  # the sender survived both
        path, headers, _ = server.requests[-1]
        assert path == "/api/v2/alerts"
        assert headers["Authorization"] == "Basic YWxpY2U6czNjcmV0"
        box.write(_batch(_alert("resolved")))
        box.durable()
        _until(lambda: box.stats["alertmanager-1"].rejected == 1, 120)
        _until(lambda: box.pending() == 0)
    finally:
        box.close()
        server.close()
    logged = " ".join(str(vars(record)) for record in caplog.records)
    assert "s3cret" not in logged and "alice" not in logged
    assert "start time must be before end time" in logged


def test_a_refused_token_or_a_redirect_is_a_failure_retried_never_followed(
        tmp_path: Path) -> None:
    elsewhere = _Server(lambda: (200, b""))
    answers = iter([(401, b"expired"), (302, b"", {"Location": f"{elsewhere.url}/steal"}),
                    (200, b"")])
    target = _Server(lambda: next(answers, (200, b"")))
    am = target.url.replace("http://", "http://alice:s3cret@") + "/"
    box = AlertOutbox(tmp_path / "alert_outbox.sqlite", [am], [], fsync=False).start()
    try:
        box.write(_batch(_alert("firing")))
        box.durable()
        _until(lambda: box.stats["alertmanager-1"].sent == 1, 120)
        assert box.stats["alertmanager-1"].failures == 2
        assert box.stats["alertmanager-1"].rejected == 0
        assert elsewhere.requests == []  # the redirect was not followed: no credentials leak
    finally:
        box.close()
        target.close()
        elsewhere.close()
