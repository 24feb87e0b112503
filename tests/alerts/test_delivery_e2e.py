"""End to end on real components: placewatch's alerts reach a webhook receiver through a real
Prometheus (rules) and a real Alertmanager, and directly through the outbox; they resolve; and
none is lost or notified twice when Alertmanager and placewatch restart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.alerts.stack import (
    Receiver,
    alertmanager,
    free_port,
    prometheus,
    start_run,
    stop_run,
    until,
)

DRIFT = {"alertname": "PlacewatchEquityDrift", "attribute": "team", "group": "genomics",
         "metric": "preferred_rate"}


def _config(path: Path, **keys: Any) -> Path:
    path.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in keys.items()))
    return path


def _states(notified: list[dict[str, Any]], labels: dict[str, str]) -> list[str]:
    """The statuses Alertmanager notified for the alert with ``labels``, in order."""
    return [n["status"] for n in notified
            if all(n["labels"].get(k) == v for k, v in labels.items())]


def _alerts(out: Path) -> list[dict[str, Any]]:
    path = out / "alerts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_equity_drift_reaches_on_call_through_rules_and_directly_then_resolves(
        tmp_path: Path) -> None:
    receiver = Receiver()
    port = free_port()
    with alertmanager(tmp_path / "am-rules", f"{receiver.url}/rules") as am_rules, \
            alertmanager(tmp_path / "am-direct", f"{receiver.url}/direct") as am_direct, \
            prometheus(tmp_path / "prom", f"127.0.0.1:{port}", am_rules, keep_firing_for="5s"):
        config = _config(tmp_path / "placewatch.toml", metrics_port=port,
                         alertmanager_urls=[am_direct], alertmanager_resend_s=2,
                         alertmanager_resolve_grace_s=2)
        # the drift starts at 40% of the events and is undone at 55,000
        proc = start_run(tmp_path / "run", config, tmp_path / "run.log", "--scenario",
                         "equity_drift", "--max-events", "100000", "--revert-at", "55000",
                         "--speedup", "20000")
        try:
            for path in ("/rules/", "/direct/"):
                until(lambda p=path: _states(receiver.notified(p), DRIFT)[:2]
                      == ["firing", "resolved"], 600,
                      f"no firing then resolved for team=genomics via {path}: "
                      f"{receiver.notified(path)}; log: {(tmp_path / 'run.log').read_text()}")
        finally:
            code = stop_run(proc)
        receiver.close()
    assert code == 0
    for path in ("/rules/", "/direct/"):
        firing = next(n for n in receiver.notified(path)
                      if n["labels"].get("group") == "genomics" and n["status"] == "firing"
                      and n["labels"]["alertname"] == "PlacewatchEquityDrift")
        # a warning goes to the reviewers' receiver, with the group named
        assert any(p.startswith(f"{path}placewatch-reviewers") for p, _, _ in receiver.posts)
        assert "team=genomics" in firing["annotations"]["summary"] + \
            firing["annotations"]["description"]
        assert firing["annotations"]["runbook_url"].endswith("PlacewatchEquityDrift.md")
    # both paths carry one identity: the same labels, the fingerprint of alerts.jsonl
    edges = [a for a in _alerts(tmp_path / "run") if a["group"] == "genomics"
             and a["kind"] == "equity_drift"]
    wanted = {"fingerprint": edges[0]["fingerprint"]}
    rule = next(n for n in receiver.notified("/rules/")
                if n["labels"]["fingerprint"] == wanted["fingerprint"])
    direct = next(n for n in receiver.notified("/direct/")
                  if n["labels"]["fingerprint"] == wanted["fingerprint"])
    assert rule["labels"] == direct["labels"]
    # and neither path notified it firing twice before it resolved
    for path in ("/rules/", "/direct/"):
        assert _states(receiver.notified(path), wanted)[:2] == ["firing", "resolved"]


def test_nothing_is_lost_or_notified_twice_across_an_alertmanager_outage_and_a_restart(
        tmp_path: Path) -> None:
    receiver = Receiver()
    receiver.down = True  # the webhook, too, is down during the first run
    am_port = free_port()
    am_url = f"http://127.0.0.1:{am_port}"
    config = _config(tmp_path / "placewatch.toml", metrics_port=0,
                     alertmanager_urls=[am_url], webhook_urls=[f"{receiver.url}/hook"],
                     alertmanager_resend_s=1, alertmanager_resolve_grace_s=1)
    out = tmp_path / "run"
    # 1. Alertmanager down: findings fire, the outbox keeps them; the run ends on its own.
    first = start_run(out, config, tmp_path / "run1.log", "--scenario", "equity_drift",
                      "--max-events", "40000", "--speedup", "1000000")
    try:
        assert first.wait(timeout=600) == 0, (tmp_path / "run1.log").read_text()
    finally:
        stop_run(first)
    fired = [a for a in _alerts(out) if a["state"] == "firing"]
    assert fired, (tmp_path / "run1.log").read_text()
    assert receiver.posts == []
    log1 = (tmp_path / "run1.log").read_text()
    assert "alert delivery failing; will retry" in log1
    # 2. Alertmanager and the webhook come back; placewatch restarts on the same directory.
    receiver.down = False
    with alertmanager(tmp_path / "am", f"{receiver.url}/am", port=am_port):
        second = start_run(out, config, tmp_path / "run2.log", "--scenario", "baseline",
                           "--max-events", "2000", "--speedup", "1000000")
        try:
            assert second.wait(timeout=600) == 0, (tmp_path / "run2.log").read_text()
        finally:
            stop_run(second)
        edges = _alerts(out)
        # every edge of both runs reached the webhook, once each, in order
        until(lambda: len(receiver.bodies("/hook")) >= len(edges), 120,
              f"webhook got {len(receiver.bodies('/hook'))} of {len(edges)} edges")
        assert [(e["fingerprint"], e["state"]) for e in receiver.bodies("/hook")] == \
            [(e["fingerprint"], e["state"]) for e in edges]
        # Alertmanager notified each finding of the first run firing once, then resolved once
        # (the restarted run closes what its predecessor left open)
        for alert in fired:
            labels = {"fingerprint": alert["fingerprint"]}
            until(lambda lab=labels: _states(receiver.notified("/am/"), lab) ==
                  ["firing", "resolved"], 120,
                  f"{alert['summary']}: {_states(receiver.notified('/am/'), labels)}")
    receiver.close()
