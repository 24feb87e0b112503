"""Direct delivery of alert edges to Alertmanager and to webhooks, through a durable outbox.

Every alert edge is committed to ``alert_outbox.sqlite`` (beside the audit store) when its
batch is written; one sender thread per target delivers from there, so nothing on the event
path waits for a network, a slow target does not hold up the others, and nothing is lost when
a receiver, or placewatch itself, is down:

- **Alertmanager** (``alertmanager_urls``; every URL of an HA pair gets every alert): one row
  per (target, fingerprint) holds the alert's latest edge. ``POST /api/v2/alerts`` sends it
  with the labels the Prometheus rules give the same alert (alerts/placewatch.rules.yml), so
  Alertmanager deduplicates the two paths. A firing alert is re-sent every
  ``alertmanager_resend_s`` with ``endsAt`` four resend intervals ahead (as Prometheus does: if
  placewatch stops, Alertmanager resolves it after that). A resolved one is sent with
  ``endsAt`` ``alertmanager_resolve_grace_s`` after its resolution, then forgotten: the
  Prometheus rule, which sees the resolution a scrape and an evaluation later, then ends the
  alert itself without the two paths disagreeing in between.
- **Webhooks** (``webhook_urls``): every edge, as its ``alerts.jsonl`` line, is POSTed in order,
  at least once (a response lost in transit means a repeat; each body carries
  ``fingerprint``, ``state`` and ``event_index`` to deduplicate on, also sent as the header
  ``Placewatch-Edge``).

A target that fails is retried with exponential backoff (1 s doubling to 5 min, each wait
drawn between half and all of it, so a fleet does not retry in step), however many new edges
arrive meanwhile; a redirect is a failure, never followed. Only a 400 or 422 (the payload is
invalid) is permanent: the payload is kept in the outbox's ``rejected`` table, logged with the
answer, counted, and delivery moves on (firing Alertmanager rows keep being re-sent, since
Alertmanager accepts the valid alerts of a batch it refuses).
Credentials in a URL (``https://user:pass@host``) are sent as an ``Authorization: Basic``
header and never logged, exported or stored: targets are named ``alertmanager-1``,
``webhook-1`` ..., with their ``scheme://host:port`` as the ``endpoint``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec

from detectors.alerts import Alert, iso
from streams.errors import PlacewatchError
from streams.logs import log_event
from streams.sinks.base import Batch
from streams.sinks.receivers import TIMEOUT_S, Rejected, Target, post, reason, targets

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
    version INTEGER NOT NULL,
    sent_at REAL,
    PRIMARY KEY (target, fingerprint)
);
CREATE TABLE IF NOT EXISTS webhook_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    body BLOB NOT NULL,
    changed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_queue_target ON webhook_queue (target, id);
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    body BLOB NOT NULL,
    status INTEGER NOT NULL,
    answer TEXT NOT NULL,
    rejected_at REAL NOT NULL
);
"""
DELIVERY_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Upper bounds (seconds) of the delivery-latency histogram: from the arrival of the first
event of the alert's batch (no later than the alert's own event) to the target's first
acceptance of the edge."""
_BACKOFF_CAP_S: Final = 300.0
_SEND_BATCH: Final = 500
def alertmanager_alert(alert: Alert, state: str, starts_at: float, ends_at: float,
                       extra_labels: Mapping[str, str], runbook_base: str) -> dict[str, Any]:
    """One alert as Alertmanager's v2 API takes it: the rule path's labels (empty ones left
    out, as Prometheus drops them), and annotations for the on-call engineer."""
    labels = {"alertname": alert.alert, "severity": alert.severity, "kind": alert.kind,
              "attribute": alert.attribute or "", "group": alert.group or "",
              "metric": alert.metric, "fingerprint": alert.fingerprint, **extra_labels}
    return {
        "labels": {k: v for k, v in labels.items() if v},
        "annotations": {
            "summary": alert.summary,
            "description": (f"{alert.summary} Value {alert.value:g} against "
                            f"{alert.reference}; {state} on decision {alert.decision_id} "
                            f"at {alert.at} (event time)."),
            "runbook_url": f"{runbook_base}{alert.alert}.md",
            "decision_id": alert.decision_id,
            "event_time": alert.at,
        },
        "startsAt": _rfc3339(starts_at),
        "endsAt": _rfc3339(max(ends_at, starts_at)),
    }


def _rfc3339(ts: float) -> str:
    return iso(dt.datetime.fromtimestamp(ts, dt.UTC))


@dataclass(slots=True)
class DeliveryStats:
    """Per target: what its sender did (read by the metrics collector)."""

    endpoint: str
    sent: int = 0
    failures: int = 0
    rejected: int = 0
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


class AlertOutbox:
    """A sink that queues alert edges durably, and the threads that deliver them."""

    name = "alert_outbox.sqlite"

    def __init__(self, path: Path, alertmanager_urls: Sequence[str] = (),
                 webhook_urls: Sequence[str] = (), resend_s: float = 60.0,
                 extra_labels: Mapping[str, str] | None = None,
                 runbook_base: str = "alerts/runbooks/", resolve_grace_s: float = 60.0,
                 fsync: bool = True,
                 post: Callable[[Target, str, bytes, Mapping[str, str]], None] = post,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.targets = targets(alertmanager_urls, webhook_urls)
        self.resend_s = resend_s
        self.resolve_grace_s = resolve_grace_s
        self.extra_labels = dict(extra_labels or {})
        self.runbook_base = runbook_base
        self._post = post
        self._clock = clock
        self.stats = {t.name: DeliveryStats(t.endpoint) for t in self.targets}
        self._lock = threading.Lock()  # the connection and the stats, between threads
        try:
            self._db = sqlite3.connect(path, timeout=30, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            self._db.executescript(_SCHEMA)
            (self._version,), = self._db.execute("SELECT coalesce(max(version), 0) "
                                                 "FROM am_alerts")
            self._warn_unconfigured()
        except sqlite3.Error as exc:
            raise PlacewatchError(f"cannot open the alert outbox {path}: {exc}") from exc
        self._stop = threading.Event()
        self._down: set[str] = set()
        """Targets whose latest attempt failed (each sender touches only its own)."""
        self._wake = {t.name: threading.Event() for t in self.targets}
        self._first = {t.name: threading.Event() for t in self.targets}
        self._threads = [threading.Thread(target=self._run, args=(t,), daemon=True,
                                          name=f"placewatch-outbox-{t.name}")
                         for t in self.targets]

    def _warn_unconfigured(self) -> None:
        keys = [t.key for t in self.targets]
        marks = ",".join("?" * len(keys)) or "''"
        (left,), = self._db.execute(
            f"SELECT (SELECT count(*) FROM am_alerts WHERE target NOT IN ({marks})) + "
            f"(SELECT count(*) FROM webhook_queue WHERE target NOT IN ({marks}))",
            (*keys, *keys))
        if left:
            log_event(_LOG, logging.WARNING, "alert outbox holds edges for targets no longer "
                      "configured; they are kept, not sent", edges=int(left),
                      outbox=str(self.path))

    def reconcile(self, open_fingerprints: Iterable[str]) -> int:
        """Before sending: alerts the outbox holds as firing that the run directory's
        ``alerts.jsonl`` does not (its writer stopped between the two files) are resolved, so
        Alertmanager is not told of an alert no detector will ever end. Returns how many."""
        keep = set(open_fingerprints)
        now = self._clock()
        with self._lock:
            rows = self._db.execute("SELECT target, fingerprint FROM am_alerts WHERE "
                                    "state = 'firing'").fetchall()
            stale = [(t, fp) for t, fp in rows if fp not in keep]
            if stale:
                with self._transaction():
                    for target, fp in stale:
                        self._version += 1
                        self._db.execute(
                            "UPDATE am_alerts SET state = 'resolved', changed_at = ?, "
                            "due_at = ?, version = ?, sent_at = NULL WHERE target = ? AND "
                            "fingerprint = ?", (now, now, self._version, target, fp))
        return len(stale)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (the caller holds the lock),
        so the shared connection is never left inside a transaction."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def start(self) -> AlertOutbox:
        """Start one sender per target (after :meth:`reconcile`)."""
        for thread in self._threads:
            thread.start()
        return self

    def first_pass(self, timeout: float) -> bool:
        """Wait until every sender has tried what was due when it started."""
        deadline = time.monotonic() + timeout
        return all(event.wait(max(0.0, deadline - time.monotonic()))
                   for event in self._first.values())

    # -- the sink (event path) ------------------------------------------------------------

    def write(self, batch: Batch) -> None:
        if not batch.alerts:
            return
        now = self._clock()
        # latency counts from the arrival of the batch's first event: no later than the
        # alert's own event (or from now when that is not known)
        since = min(batch.received_at, now) if batch.received_at is not None else now
        am = [t.key for t in self.targets if t.kind == "alertmanager"]
        hooks = [t.key for t in self.targets if t.kind == "webhook"]
        try:
            with self._lock, self._transaction():
                for alert in batch.alerts:
                    body = msgspec.json.encode(alert)
                    for key in am:
                        self._version += 1
                        # a new edge is undelivered again; a firing edge starts the alert
                        # afresh, a resolved one keeps its start
                        self._db.execute(
                            "INSERT INTO am_alerts (target, fingerprint, state, alert, "
                            "starts_at, changed_at, due_at, version) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                            "ON CONFLICT (target, fingerprint) DO UPDATE SET "
                            "state = excluded.state, alert = excluded.alert, "
                            "changed_at = excluded.changed_at, due_at = excluded.due_at, "
                            "version = excluded.version, sent_at = NULL, "
                            "starts_at = CASE WHEN excluded.state = 'firing' "
                            "THEN excluded.starts_at ELSE am_alerts.starts_at END",
                            (key, alert.fingerprint, alert.state, body, since, since, now,
                             self._version))
                    for key in hooks:
                        self._db.execute("INSERT INTO webhook_queue (target, body, changed_at)"
                                         " VALUES (?, ?, ?)", (key, body, since))
        except sqlite3.Error as exc:
            raise PlacewatchError(f"alert outbox write failed ({self.path}): {exc}") from exc

    def durable(self) -> None:
        """Rows are committed in :meth:`write`; wake the senders for them."""
        for event in self._wake.values():
            event.set()

    def close(self) -> None:
        """Stop the senders after one last attempt each at what is due (undelivered rows stay
        for the next run)."""
        self._stop.set()
        self.durable()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=2 * TIMEOUT_S + 5)
        with self._lock:
            self._db.close()

    def pending(self) -> int:
        """Edges not yet accepted by their target."""
        with self._lock:
            (am,), = self._db.execute("SELECT count(*) FROM am_alerts WHERE sent_at IS NULL")
            (hooks,), = self._db.execute("SELECT count(*) FROM webhook_queue")
        return int(am) + int(hooks)

    # -- one sender thread per target -----------------------------------------------------

    def _run(self, target: Target) -> None:
        streak = 0
        retry_at = 0.0
        while True:
            stopping = self._stop.is_set()
            now = self._clock()
            wait = retry_at - now
            if wait > 0:  # backing off: keep the pending figure current all the same
                with contextlib.suppress(sqlite3.Error):
                    self._count_pending(target)
            if wait <= 0:
                try:
                    ok, wait = self._pass(target, now)
                except Exception as exc:  # never let a sender die: log, back off, go on
                    log_event(_LOG, logging.ERROR, "alert sender failed; retrying",
                              target=target.name, error=f"{type(exc).__name__}: {exc}")
                    ok, wait = False, 0.0
                if ok:
                    streak = 0
                else:
                    streak += 1
                    wait = _backoff(streak)
                    retry_at = self._clock() + wait
            self._first[target.name].set()
            if stopping:
                return
            event = self._wake[target.name]
            event.wait(timeout=min(max(wait, 0.0), 60.0))
            event.clear()

    def _pass(self, target: Target, now: float) -> tuple[bool, float]:
        """Send what is due; (no failure, seconds until the next row falls due)."""
        if target.kind == "alertmanager":
            ok = self._send_alertmanager(target, now)
        else:
            ok = self._send_webhooks(target)
        n = self._count_pending(target)
        with self._lock:
            if target.kind == "alertmanager":
                (due,), = self._db.execute("SELECT min(due_at) FROM am_alerts WHERE target = ?",
                                           (target.key,))
            else:
                due = now if n else None
        return ok, (float(due) - self._clock()) if due is not None else 60.0

    def _count_pending(self, target: Target) -> int:
        with self._lock:
            if target.kind == "alertmanager":
                (n,), = self._db.execute("SELECT count(*) FROM am_alerts WHERE target = ? AND "
                                         "sent_at IS NULL", (target.key,))
            else:
                (n,), = self._db.execute("SELECT count(*) FROM webhook_queue WHERE target = ?",
                                         (target.key,))
            self.stats[target.name].pending = int(n)
        return int(n)

    def _send_alertmanager(self, target: Target, now: float) -> bool:
        with self._lock:
            rows = self._db.execute(
                "SELECT fingerprint, state, alert, starts_at, changed_at, version, sent_at "
                "FROM am_alerts WHERE target = ? AND due_at <= ? ORDER BY version LIMIT ?",
                (target.key, now, _SEND_BATCH)).fetchall()
        if not rows:
            return True
        payload = []
        for _, state, body, starts_at, changed_at, _, _ in rows:
            alert = msgspec.json.decode(body, type=Alert)
            ends = now + 4 * self.resend_s if state == "firing" else \
                changed_at + self.resolve_grace_s
            payload.append(alertmanager_alert(alert, state, starts_at, ends, self.extra_labels,
                                              self.runbook_base))
        endpoint = target.url.rstrip("/") + "/api/v2/alerts"
        outcome = self._attempt(target, endpoint, json.dumps(payload).encode(), {})
        if outcome is False:
            return False
        done = self._clock()
        stats = self.stats[target.name]
        with self._lock, self._transaction():
            for fp, state, _, _, changed, version, sent_at in rows:
                if sent_at is None and outcome is True:
                    stats.observe(done - changed)
                if state == "resolved":  # delivered: forget it unless a newer edge came in
                    self._db.execute("DELETE FROM am_alerts WHERE target = ? AND "
                                     "fingerprint = ? AND version = ?", (target.key, fp, version))
                else:  # re-sent every resend_s (after a 400 too: Alertmanager keeps the
                    # valid alerts of a batch it refuses, and they must not expire)
                    self._db.execute(
                        "UPDATE am_alerts SET sent_at = ?, due_at = ? WHERE target = ? AND "
                        "fingerprint = ? AND version = ?",
                        (done, done + self.resend_s, target.key, fp, version))
            if outcome is True:
                stats.sent += len(rows)
        return True

    def _send_webhooks(self, target: Target) -> bool:
        while True:
            with self._lock:
                row = self._db.execute("SELECT id, body, changed_at FROM webhook_queue WHERE "
                                       "target = ? ORDER BY id LIMIT 1",
                                       (target.key,)).fetchone()
            if row is None:
                return True
            rowid, body, changed = row
            edge = msgspec.json.decode(body, type=Alert)
            outcome = self._attempt(target, target.url, bytes(body), {
                "Placewatch-Edge": f"{edge.fingerprint}:{edge.state}:{edge.event_index}"})
            if outcome is False:
                return False  # in order: a failed edge holds back the ones after it
            done = self._clock()
            with self._lock:
                self._db.execute("DELETE FROM webhook_queue WHERE id = ?", (rowid,))
                if outcome is True:
                    self.stats[target.name].observe(done - changed)
                    self.stats[target.name].sent += 1

    def _attempt(self, target: Target, url: str, payload: bytes,
                 headers: Mapping[str, str]) -> bool | None:
        """True when accepted, False to retry later, None when refused for good (the
        payload is kept in ``rejected``)."""
        stats = self.stats[target.name]
        try:
            self._post(target, url, payload, headers)
        except Rejected as exc:
            with self._lock:
                stats.rejected += 1
                self._db.execute("INSERT INTO rejected (target, body, status, answer, "
                                 "rejected_at) VALUES (?, ?, ?, ?, ?)",
                                 (target.key, payload, exc.status, exc.answer[:2000],
                                  self._clock()))
            log_event(_LOG, logging.ERROR, "alert delivery refused; kept in the outbox's "
                      "rejected table", target=target.name, endpoint=target.endpoint,
                      status=exc.status, answer=exc.answer[:300])
            return None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            with self._lock:
                stats.failures += 1
            if target.name not in self._down:  # once per outage
                self._down.add(target.name)
                log_event(_LOG, logging.WARNING, "alert delivery failing; will retry",
                          target=target.name, endpoint=target.endpoint, error=reason(exc))
            return False
        with self._lock:
            stats.last_success_at = self._clock()
        if target.name in self._down:
            self._down.discard(target.name)
            log_event(_LOG, logging.INFO, "alert delivery recovered", target=target.name,
                      endpoint=target.endpoint)
        return True


def _backoff(streak: int) -> float:
    """Between half and all of an exponential ceiling: 1 s, 2 s, 4 s ... capped at 5 min."""
    return random.uniform(0.5, 1.0) * min(_BACKOFF_CAP_S, 2.0 ** min(streak - 1, 16))
