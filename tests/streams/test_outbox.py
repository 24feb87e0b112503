"""The durable alert outbox: what Alertmanager and webhooks receive, retries while they are
down, re-sends while firing, and nothing lost across a restart."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path
from typing import Any

from detectors.alerts import Alert, fingerprint
from streams.sinks.base import Batch
from streams.sinks.outbox import AlertOutbox

AM = "http://user:secret@127.0.0.1:9/am"
HOOK = "http://127.0.0.1:9/hook"


class Receiver:
    """Stands in for the network: records every POST, or refuses while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.posts: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, url: str, payload: bytes) -> None:
        if self.down:
            raise urllib.error.URLError("connection refused")
        with self.lock:
            self.posts.append((url, json.loads(payload)))

    def to(self, url: str) -> list[Any]:
        with self.lock:
            return [body for target, body in self.posts if target == url]


def _alert(state: str, group: str = "genomics", kind: str = "equity_drift") -> Alert:
    key = (kind, "team", group, "preferred_rate")
    return Alert("PlacewatchEquityDrift", state, fingerprint(key), *key, severity="warning",
                 value=0.38, reference=0.61, decision_id="d-9", event_index=9,
                 at="2026-11-02T08:15:00.000Z", summary=f"team={group}: drifted.")


def _batch(*alerts: Alert) -> Batch:
    return Batch(0, 1, [], list(alerts), [])


def _until(check: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.02)


def _outbox(path: Path, receiver: Receiver, **kw: Any) -> AlertOutbox:
    return AlertOutbox(path / "alert_outbox.sqlite", [AM], [HOOK], post=receiver, fsync=False,
                       **kw)


def test_alertmanager_gets_the_rule_labels_then_the_resolution(tmp_path: Path) -> None:
    receiver = Receiver()
    box = _outbox(tmp_path, receiver, extra_labels={"cluster": "eu-1"})
    try:
        box.write(_batch(_alert("firing")))
        box.durable()
        _until(lambda: len(receiver.to(f"{AM}/api/v2/alerts")) == 1)
        [sent] = receiver.to(f"{AM}/api/v2/alerts")[0]
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
        _until(lambda: len(receiver.to(f"{AM}/api/v2/alerts")) == 2)
        [ended] = receiver.to(f"{AM}/api/v2/alerts")[1]
        assert ended["labels"] == sent["labels"] and ended["startsAt"] == sent["startsAt"]
        assert ended["endsAt"] <= sent["endsAt"]
        _until(lambda: box.pending() == 0)
        # the webhook got both edges, in order, as alerts.jsonl lines
        _until(lambda: len(receiver.to(HOOK)) == 2)
        assert [edge["state"] for edge in receiver.to(HOOK)] == ["firing", "resolved"]
    finally:
        box.close()
    assert box.stats["http://127.0.0.1:9/am"].sent == 2  # no credentials in the label


def test_a_firing_alert_is_re_sent_while_it_lasts(tmp_path: Path) -> None:
    receiver = Receiver()
    box = _outbox(tmp_path, receiver, resend_s=1.0)
    try:
        box.write(_batch(_alert("firing")))
        box.durable()
        _until(lambda: len(receiver.to(f"{AM}/api/v2/alerts")) >= 3)
        ends = [body[0]["endsAt"] for body in receiver.to(f"{AM}/api/v2/alerts")]
        assert ends == sorted(ends) and ends[0] < ends[-1]
    finally:
        box.close()
    assert len(receiver.to(HOOK)) == 1  # a webhook gets each edge once


def test_nothing_is_lost_while_receivers_are_down_or_across_a_restart(tmp_path: Path) -> None:
    receiver = Receiver()
    receiver.down = True
    box = _outbox(tmp_path, receiver)
    box.write(_batch(_alert("firing", "a"), _alert("firing", "b")))
    box.durable()
    box.write(_batch(_alert("resolved", "a")))
    box.durable()
    _until(lambda: box.stats["http://127.0.0.1:9/am"].failures >= 1
           and box.stats[HOOK].failures >= 1)
    box.close()
    assert receiver.posts == []
    # a new process on the same outbox, receivers back
    receiver.down = False
    again = _outbox(tmp_path, receiver)
    try:
        assert again.first_pass.wait(30)
        _until(lambda: len(receiver.to(HOOK)) == 3)
        assert [(e["group"], e["state"]) for e in receiver.to(HOOK)] == \
            [("a", "firing"), ("b", "firing"), ("a", "resolved")]
        _until(lambda: len({a["labels"]["group"] for body in receiver.to(f"{AM}/api/v2/alerts")
                            for a in body}) == 2)
        sent = [alert for body in receiver.to(f"{AM}/api/v2/alerts") for alert in body]
        # Alertmanager is told each alert's latest edge: a ended already, b still firing
        now = time.time()
        latest = {a["labels"]["group"]: dt.datetime.fromisoformat(a["endsAt"]).timestamp()
                  for a in sent}
        assert latest["a"] < now < latest["b"]
        _until(lambda: again.pending() == 0)
    finally:
        again.close()
