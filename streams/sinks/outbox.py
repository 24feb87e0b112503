"""Direct delivery of alert edges to Alertmanager and to webhooks, through a durable outbox.

Every alert edge is written, in the batch's own transaction, to ``alert_outbox.sqlite`` beside
the audit store; a sender thread delivers from there, so nothing on the event path waits for a
network and nothing is lost when a receiver, or placewatch itself, is down:

- **Alertmanager** (``alertmanager_urls``; every URL of an HA pair gets every alert): one row
  per (URL, fingerprint) holds the alert's latest edge. ``POST /api/v2/alerts`` sends it with
  the labels the Prometheus rules give the same alert (alerts/placewatch.rules.yml), so
  Alertmanager deduplicates the two paths. A firing alert is re-sent every
  ``alertmanager_resend_s`` with ``endsAt`` four resend intervals ahead (as Prometheus does: if
  placewatch stops, Alertmanager resolves it after that); a resolved one is sent with
  ``endsAt`` at its resolution and then forgotten.
- **Webhooks** (``webhook_urls``): every edge, as its ``alerts.jsonl`` line, is POSTed once, in
  order, per URL.

A failed send is retried with exponential backoff (1 s doubling to 5 min), each wait drawn
between half and all of it (jitter), so a fleet does not retry in step.
Rows survive a restart; the sender resumes them at once.
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec

from detectors.alerts import Alert
from streams.errors import PlacewatchError
from streams.logs import log_event
from streams.settings import public_url
from streams.sinks.base import Batch

__all__ = ["DELIVERY_BUCKETS", "AlertOutbox", "DeliveryStats", "alertmanager_alert"]

_LOG = logging.getLogger("placewatch")
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS am_alerts (
    target TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    alert BLOB NOT NULL,
    starts_at REAL NOT NULL,
    changed_at REAL NOT NULL,
    due_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    sent_at REAL,
    PRIMARY KEY (target, fingerprint)
);
CREATE TABLE IF NOT EXISTS webhook_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    body BLOB NOT NULL,
    changed_at REAL NOT NULL,
    due_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
"""
DELIVERY_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Upper bounds (seconds) of the delivery-latency histogram: from the arrival of the first
event of the alert's batch to the target's first acceptance of the edge."""
_BACKOFF_CAP_S: Final = 300.0
_SEND_BATCH: Final = 500
_TIMEOUT_S: Final = 10.0


def alertmanager_alert(alert: Alert, starts_at: float, ends_at: float | None,
                       extra_labels: Mapping[str, str], runbook_base: str) -> dict[str, Any]:
    """One alert as Alertmanager's v2 API takes it: the rule path's labels (empty ones left
    out, as Prometheus drops them), and annotations for the on-call engineer."""
    labels = {"alertname": alert.alert, "severity": alert.severity, "kind": alert.kind,
              "attribute": alert.attribute or "", "group": alert.group or "",
              "metric": alert.metric, "fingerprint": alert.fingerprint, **extra_labels}
    out: dict[str, Any] = {
        "labels": {k: v for k, v in labels.items() if v},
        "annotations": {
            "summary": alert.summary,
            "description": (f"{alert.summary} Value {alert.value:g} against "
                            f"{alert.reference}; detected on decision {alert.decision_id} "
                            f"at {alert.at} (event time)."),
            "runbook_url": f"{runbook_base}{alert.alert}.md",
            "decision_id": alert.decision_id,
            "event_time": alert.at,
        },
        "startsAt": _rfc3339(starts_at),
    }
    if ends_at is not None:
        out["endsAt"] = _rfc3339(ends_at)
    return out


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


@dataclass(slots=True)
class DeliveryStats:
    """Per target: what the sender did (read by the metrics collector)."""

    sent: int = 0
    failures: int = 0
    pending: int = 0
    last_success_at: float | None = None
    latency_buckets: list[int] = field(default_factory=lambda: [0] * len(DELIVERY_BUCKETS))
    latency_count: int = 0
    latency_sum: float = 0.0

    def observe(self, seconds: float) -> None:
        self.latency_count += 1
        self.latency_sum += seconds
        for i, bound in enumerate(DELIVERY_BUCKETS):
            if seconds <= bound:
                self.latency_buckets[i] += 1


def _post(url: str, payload: bytes) -> None:
    request = urllib.request.Request(url, data=payload, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "placewatch"})
    with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
        response.read()


class AlertOutbox:
    """A sink that queues alert edges durably, and the thread that delivers them."""

    name = "alert_outbox.sqlite"

    def __init__(self, path: Path, alertmanager_urls: Sequence[str] = (),
                 webhook_urls: Sequence[str] = (), resend_s: float = 60.0,
                 extra_labels: Mapping[str, str] | None = None,
                 runbook_base: str = "alerts/runbooks/", fsync: bool = True,
                 post: Callable[[str, bytes], None] = _post,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.alertmanager_urls = tuple(alertmanager_urls)
        self.webhook_urls = tuple(webhook_urls)
        self.resend_s = resend_s
        self.extra_labels = dict(extra_labels or {})
        self.runbook_base = runbook_base
        self._post = post
        self._clock = clock
        self.stats = {public_url(u): DeliveryStats()
                      for u in (*self.alertmanager_urls, *self.webhook_urls)}
        try:
            self._db = self._connect(fsync)
        except sqlite3.Error as exc:
            raise PlacewatchError(f"cannot open the alert outbox {path}: {exc}") from exc
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._down: set[str] = set()
        self._lock = threading.Lock()  # the connection and the stats, between threads
        self.first_pass = threading.Event()
        """Set once the sender has tried everything that was due when it started (what an
        earlier run left undelivered): a restarted run waits for it before new edges."""
        self._thread = threading.Thread(target=self._run, name="placewatch-alert-outbox",
                                        daemon=True)
        self._thread.start()

    def _connect(self, fsync: bool) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                             check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        db.executescript(_SCHEMA)
        now = self._clock()  # a new run retries what an earlier one left at once
        db.execute("UPDATE am_alerts SET due_at = ? WHERE due_at > ? AND sent_at IS NULL",
                   (now, now))
        db.execute("UPDATE webhook_queue SET due_at = ? WHERE due_at > ?", (now, now))
        targets = (*self.alertmanager_urls, *self.webhook_urls)
        marks = ",".join("?" * len(targets))
        (orphans,), = db.execute(
            f"SELECT (SELECT count(*) FROM am_alerts WHERE target NOT IN ({marks})) + "
            f"(SELECT count(*) FROM webhook_queue WHERE target NOT IN ({marks}))",
            (*targets, *targets))
        if orphans:
            log_event(_LOG, logging.WARNING, "alert outbox holds edges for targets no longer "
                      "configured; they are kept, not sent", edges=int(orphans),
                      outbox=str(self.path))
        return db

    # -- the sink (event path) ------------------------------------------------------------

    def write(self, batch: Batch) -> None:
        if not batch.alerts:
            return
        now = self._clock()
        # latency is measured from the arrival of the batch's first event (the latest the
        # alert's own event can have arrived), or from now when that is not known
        since = batch.received_at if batch.received_at is not None else now
        rows_am: list[tuple[Any, ...]] = []
        rows_hook: list[tuple[Any, ...]] = []
        for alert in batch.alerts:
            body = msgspec.json.encode(alert)
            for url in self.alertmanager_urls:
                rows_am.append((url, alert.fingerprint, alert.state, body, now, since, now))
            for url in self.webhook_urls:
                rows_hook.append((url, body, since, now))
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                # a firing edge starts the alert afresh; a resolved one keeps its start
                self._db.executemany(
                    "INSERT INTO am_alerts (target, fingerprint, state, alert, starts_at, "
                    "changed_at, due_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (target, fingerprint) DO UPDATE SET state = excluded.state, "
                    "alert = excluded.alert, changed_at = excluded.changed_at, "
                    "due_at = excluded.due_at, attempts = 0, "
                    "starts_at = CASE WHEN excluded.state = 'firing' THEN excluded.starts_at "
                    "ELSE am_alerts.starts_at END", rows_am)
                self._db.executemany(
                    "INSERT INTO webhook_queue (target, body, changed_at, due_at) "
                    "VALUES (?, ?, ?, ?)", rows_hook)
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise PlacewatchError(f"alert outbox write failed ({self.path}): {exc}") from exc

    def durable(self) -> None:
        """Rows are committed in :meth:`write`; wake the sender for them."""
        self._wake.set()

    def close(self) -> None:
        """Stop the sender after one last attempt at what is due (undelivered rows stay for
        the next run)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=2 * _TIMEOUT_S + 5)
        with self._lock:
            self._db.close()

    def pending(self) -> int:
        """Rows not yet delivered (firing Alertmanager rows count until they resolve)."""
        with self._lock:
            (am,), = self._db.execute("SELECT count(*) FROM am_alerts WHERE sent_at IS NULL")
            (hooks,), = self._db.execute("SELECT count(*) FROM webhook_queue")
        return int(am) + int(hooks)

    # -- the sender thread ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            try:
                next_due = self._send_due()
            except sqlite3.Error as exc:
                log_event(_LOG, logging.ERROR, "alert outbox unreadable", error=str(exc))
                next_due = self._clock() + 5.0
            self.first_pass.set()
            if stopping:
                return
            self._wake.wait(timeout=max(0.0, min(next_due - self._clock(), 60.0)))
            self._wake.clear()

    def _send_due(self) -> float:
        """Send everything due; return when the next row falls due."""
        now = self._clock()
        for url in self.alertmanager_urls:
            self._send_alertmanager(url, now)
        for url in self.webhook_urls:
            self._send_webhook(url, now)
        with self._lock:
            (due,), = self._db.execute(
                "SELECT min(d) FROM (SELECT min(due_at) AS d FROM am_alerts "
                "UNION ALL SELECT min(due_at) FROM webhook_queue)")
            self._count_pending()
        return float(due) if due is not None else now + 60.0

    def _count_pending(self) -> None:
        for url in (*self.alertmanager_urls, *self.webhook_urls):
            (n,), = self._db.execute(
                "SELECT (SELECT count(*) FROM am_alerts WHERE target = ? AND sent_at IS NULL)"
                " + (SELECT count(*) FROM webhook_queue WHERE target = ?)", (url, url))
            self.stats[public_url(url)].pending = int(n)

    def _send_alertmanager(self, url: str, now: float) -> None:
        with self._lock:
            rows = self._db.execute(
                "SELECT fingerprint, state, alert, starts_at, changed_at, sent_at, attempts "
                "FROM am_alerts WHERE target = ? AND due_at <= ? ORDER BY changed_at LIMIT ?",
                (url, now, _SEND_BATCH)).fetchall()
        if not rows:
            return
        ttl = 4 * self.resend_s
        payload = []
        for _, state, body, starts_at, changed_at, _, _ in rows:
            alert = msgspec.json.decode(body, type=Alert)
            ends = now + ttl if state == "firing" else changed_at
            payload.append(alertmanager_alert(alert, starts_at, ends, self.extra_labels,
                                              self.runbook_base))
        endpoint = url.rstrip("/") + "/api/v2/alerts"
        if not self._attempt(url, endpoint, json.dumps(payload).encode()):
            with self._lock:
                self._db.executemany(
                    "UPDATE am_alerts SET attempts = attempts + 1, due_at = ? "
                    "WHERE target = ? AND fingerprint = ? AND changed_at = ?",
                    [(now + _backoff(attempts), url, fp, changed)
                     for fp, _, _, _, changed, _, attempts in rows])
            return
        done = self._clock()
        stats = self.stats[public_url(url)]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            for fp, state, _, _, changed, sent_at, _ in rows:
                if sent_at is None:
                    stats.observe(done - changed)
                if state == "resolved":  # delivered: forget it unless a new edge came in
                    self._db.execute("DELETE FROM am_alerts WHERE target = ? AND "
                                     "fingerprint = ? AND changed_at = ?", (url, fp, changed))
                else:
                    self._db.execute(
                        "UPDATE am_alerts SET sent_at = ?, attempts = 0, due_at = ? WHERE "
                        "target = ? AND fingerprint = ? AND changed_at = ?",
                        (done, done + self.resend_s, url, fp, changed))
            self._db.execute("COMMIT")
            stats.sent += len(rows)

    def _send_webhook(self, url: str, now: float) -> None:
        while True:
            with self._lock:
                row = self._db.execute(
                    "SELECT id, body, changed_at, attempts, due_at FROM webhook_queue "
                    "WHERE target = ? ORDER BY id LIMIT 1", (url,)).fetchone()
            if row is None or row[4] > now:
                return  # in order: a failed edge holds back the ones after it
            rowid, body, changed, attempts, _ = row
            if not self._attempt(url, url, bytes(body)):
                with self._lock:
                    self._db.execute("UPDATE webhook_queue SET attempts = attempts + 1, "
                                     "due_at = ? WHERE id = ?", (now + _backoff(attempts), rowid))
                return
            done = self._clock()
            stats = self.stats[public_url(url)]
            with self._lock:
                self._db.execute("DELETE FROM webhook_queue WHERE id = ?", (rowid,))
                stats.observe(done - changed)
                stats.sent += 1

    def _attempt(self, url: str, endpoint: str, payload: bytes) -> bool:
        shown = public_url(url)
        try:
            self._post(endpoint, payload)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            with self._lock:
                self.stats[shown].failures += 1
            if url not in self._down:
                self._down.add(url)
                log_event(_LOG, logging.WARNING, "alert delivery failing; will retry",
                          target=shown, error=_reason(exc))
            return False
        with self._lock:
            self.stats[shown].last_success_at = self._clock()
        if url in self._down:
            self._down.discard(url)
            log_event(_LOG, logging.INFO, "alert delivery recovered", target=shown)
        return True


def _backoff(attempts: int) -> float:
    """Between half and all of an exponential ceiling: 1 s, 2 s, 4 s ... capped at 5 min."""
    return random.uniform(0.5, 1.0) * min(_BACKOFF_CAP_S, 2.0 ** attempts)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc)
