"""The composition root: wires settings, core, sinks, metrics and a source into one run.

Data flows one way: source → :class:`~detectors.pipeline.AuditCore` → (alerts, dead letters,
audit store) and, at scrape time, core state → Prometheus. The same :class:`Placewatch` runs a
file replay and the live simulator; only the source and the outputs' lifetime differ.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import platform
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import generate_latest, start_http_server
from prometheus_client.registry import CollectorRegistry

from detectors.audit_work import WorkItem
from detectors.pipeline import AuditContext, AuditCore
from detectors.summary import fairness_summary, wait_gaps
from streams.audit.store import SqliteAuditStore
from streams.audit.worker import (
    AuditorParams,
    AuditStatus,
    InlineAudits,
    ProcessAudits,
    Sealed,
    make_auditor,
)
from streams.errors import PlacewatchError
from streams.logs import log_event
from streams.metrics import build_registry
from streams.settings import Settings
from streams.sinks.files import JsonLinesSink, alert_line, dead_letter_line

__all__ = ["OUTPUT_FILES", "Placewatch", "create_app", "graceful_stop", "rederive_records",
           "versions"]

OUTPUT_FILES = ("alerts.jsonl", "summary.json", "dead_letter.jsonl", "metrics.prom",
                "audit.sqlite", "audit.sqlite-wal", "audit.sqlite-shm")
_BATCH = 512
AUDIT_FLUSH_ITEMS = 256
"""Audit work items gathered before they are handed on (about every 2,000 events): a hand-off
costs the event that pays it ~0.1-0.5 ms, so it should land on well under 1% of events."""
_LOG = logging.getLogger("placewatch")


def versions() -> tuple[tuple[str, str], ...]:
    """Code and library versions an audit record names."""
    out = [("python", platform.python_version())]
    for dist in ("placewatch", "msgspec", "orjson", "river", "numpy"):
        try:
            out.append((dist, importlib.metadata.version(dist)))
        except importlib.metadata.PackageNotFoundError:
            out.append((dist, "unknown"))
    return tuple(out)


@dataclass
class _Outputs:
    """The files of one run directory."""

    directory: Path
    alerts: JsonLinesSink
    dead_letters: JsonLinesSink
    store: SqliteAuditStore

    @classmethod
    def create(cls, directory: Path, resume: bool) -> _Outputs:
        """Open a run directory. ``resume`` (a live service restarting) continues its audit
        chain and appends to its alert and dead-letter files; otherwise (a replay) they are
        started afresh, but an audit store that already holds records is never deleted."""
        store = directory / "audit.sqlite"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            held = _records_in(store)
            if held and not resume:
                raise PlacewatchError(
                    f"{store} already holds {held} audit records (kept for "
                    "audit_retention_days, perhaps under legal hold): replay into another "
                    "--out, or move the store away first")
            if not resume:
                for name in OUTPUT_FILES:
                    (directory / name).unlink(missing_ok=True)
        except OSError as exc:
            raise PlacewatchError(f"cannot use output directory {directory}: {exc}") from exc
        return cls(directory, JsonLinesSink(directory / "alerts.jsonl", append=resume),
                   JsonLinesSink(directory / "dead_letter.jsonl", append=resume),
                   SqliteAuditStore(store))

    def close(self) -> None:
        self.alerts.close()
        self.dead_letters.close()
        self.store.close()


def _records_in(store: Path) -> int:
    """Records an existing audit store holds (0 when there is none or it is empty)."""
    if not store.is_file():
        return 0
    try:
        db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT count(*) FROM records").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise PlacewatchError(f"{store} exists but cannot be read as an audit store ({exc}); "
                              "it is left untouched: move it away or choose another --out"
                              ) from exc


class Placewatch:
    """One configured instance: a core, its metrics registry and a lock between them."""

    def __init__(self, settings: Settings, core: AuditCore, registry: CollectorRegistry,
                 lock: threading.Lock) -> None:
        self.settings = settings
        self.core = core
        self.registry = registry
        self.lock = lock
        self.inputs: list[str] = []
        self.audit_status = AuditStatus()
        self._audits: InlineAudits | ProcessAudits | None = None
        self._audit_work: list[WorkItem] = []
        self.stop_requested = threading.Event()
        """Set by the first Ctrl-C or SIGTERM (:func:`graceful_stop`): finish the batch, stop."""

    @property
    def _identity(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """What every audit record names: the configuration hash and the versions."""
        return self.core.context.config_hash, self.core.context.versions

    def _start_audits(self, live: bool) -> InlineAudits | ProcessAudits:
        """Inline for replay (reproducible); a worker process for live runs unless configured."""
        s = self.settings
        mode = s.audit_worker if s.audit_worker != "auto" else ("process" if live else "inline")
        if mode == "process":
            audits: InlineAudits | ProcessAudits = ProcessAudits(
                AuditorParams.from_config(s.core, s.currency, *self._identity), s.audit_backlog)
        else:
            audits = InlineAudits(make_auditor(s.core, s.currency, *self._identity))
        self._audits = audits
        self.audit_status = audits.status
        return audits

    # -- the loop shared by every mode ----------------------------------------------------

    def _consume(self, events: Iterable[tuple[str, bytes]], out: _Outputs,
                 log_alerts: bool) -> Iterator[int]:
        """Feed the core in batches; after each batch write its effects; yield progress."""
        core = self.core
        batch: list[tuple[str, bytes]] = []
        iterator = iter(events)
        stop = self.stop_requested
        while not stop.is_set():
            batch.clear()
            for item in iterator:
                batch.append(item)
                if len(batch) >= _BATCH or stop.is_set():
                    break
            if not batch:
                return
            first = core.events_in
            try:
                with self.lock:
                    for _, raw in batch:
                        core.process(raw)
            except KeyboardInterrupt:  # a second signal mid-batch: keep what was processed
                self.stop_requested.set()
                self._write(out, first, batch, log_alerts)
                raise
            self._write(out, first, batch, log_alerts)
            yield len(batch)

    def _write(self, out: _Outputs, first: int, batch: list[tuple[str, bytes]],
               log_alerts: bool) -> None:
        effects = self.core.drain()
        out.dead_letters.write([dead_letter_line(d, batch[d.event_index - first][0])
                                for d in effects.dead_letters])
        out.alerts.write([alert_line(a) for a in effects.alerts])
        assert self._audits is not None
        self._audit_work.extend(effects.audit_work)
        if len(self._audit_work) >= AUDIT_FLUSH_ITEMS or not batch:
            work, self._audit_work = self._audit_work, []
            self._store(out, self._audits.submit(work))
        if log_alerts:
            for alert in effects.alerts:
                log_event(_LOG, logging.WARNING, alert.summary, alert=alert.alert,
                          kind=alert.kind, attribute=alert.attribute, group=alert.group,
                          metric=alert.metric, value=alert.value, at=alert.at,
                          decision_id=alert.decision_id)

    @staticmethod
    def _store(out: _Outputs, records: list[Sealed]) -> None:
        for checkpoint in out.store.append_bodies(records):
            log_event(_LOG, logging.DEBUG, "audit checkpoint", records=checkpoint[0],
                      head=checkpoint[1])

    def _finish(self, out: _Outputs) -> dict[str, Any]:
        with self.lock:
            self.core.finish()
        self._write(out, self.core.events_in, [], log_alerts=False)
        assert self._audits is not None
        self._store(out, self._audits.close())
        records, head = out.store.checkpoint_now()
        summary = self.summary(records, head)
        (out.directory / "summary.json").write_bytes(
            orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
        (out.directory / "metrics.prom").write_bytes(generate_latest(self.registry))
        out.close()
        log_event(_LOG, logging.INFO, "run finished", out=str(out.directory),
                  events_in=summary["events_in"], rejected=summary["rejected"],
                  alerts=summary["alerts"], audited=summary["audited"], audit_head=head)
        return summary

    def summary(self, audit_records: int, audit_head: str) -> dict[str, Any]:
        """Everything the contract lists for ``summary.json`` (deterministic: no wall clock)."""
        core = self.core
        cfg = core.config
        return {
            "placewatch_version": dict(core.context.versions).get("placewatch", "unknown"),
            "config_hash": core.context.config_hash,
            "inputs": self.inputs,
            "events_in": core.events_in,
            "placements": core.placements,
            "outcomes": core.outcomes,
            "duplicates": core.duplicates,
            "rejected": core.rejected,
            "rejected_by_reason": dict(sorted(core.rejected_by_reason.items())),
            "orphaned_outcomes": core.orphaned_outcomes,
            "joined_outcomes": core.joined,
            "unmatched_placements": core.joiner.unmatched_placements,
            "clock_outliers": core.clock_outliers,
            "untracked_attribute_keys": core.ledger.untracked_keys,
            "audited": core.audited,
            "audit_deferred": self.audit_status.deferred,
            "shadow_training_skipped": self.audit_status.training_skipped,
            "alerts": core.alerts_fired,
            "alerts_by_kind": dict(sorted(core.alerts_by_kind.items())),
            "audit_store": "audit.sqlite",
            "audit_head": {"records": audit_records, "hash": audit_head},
            "settings": {
                "attributes": list(core.ledger.attribute_names),
                "min_group_support": cfg.min_group_support,
                "preferred_tiers": list(cfg.preferred_tiers),
                "audit_sample_rate": cfg.audit_sample_rate,
                "currency": self.settings.currency,
            },
            "fairness": fairness_summary(core.ledger, cfg.min_group_support, cfg.confidence,
                                         cfg.disparity_ratio_threshold),
            "scheduling_equity": wait_gaps(core.wait_equity),
        }

    # -- modes ----------------------------------------------------------------------------

    def replay(self, events: Iterable[tuple[str, bytes]], out_dir: Path,
               progress: Any = None) -> dict[str, Any]:
        """Run a finite source to the end and write the contract's files to ``out_dir``."""
        out = _Outputs.create(out_dir, resume=False)
        audits = self._start_audits(live=False)
        try:
            for n in self._consume(events, out, log_alerts=False):
                if progress is not None:
                    progress(n)
        except BaseException:
            audits.close()
            out.close()
            raise
        return self._finish(out)

    def run_live(self, events: Iterable[tuple[str, bytes]], out_dir: Path,
                 status: Any = None) -> dict[str, Any]:
        """Serve ``/metrics`` and process until the source ends or Ctrl-C / SIGTERM."""
        s = self.settings
        try:
            server, thread = start_http_server(s.metrics_port, addr=s.metrics_host,
                                               registry=self.registry)
        except OSError as exc:
            raise PlacewatchError(f"cannot listen on {s.metrics_host}:{s.metrics_port}: "
                                  f"{exc.strerror or exc}; set metrics_port or "
                                  "PLACEWATCH_METRICS_PORT") from exc
        port = server.server_address[1]
        log_event(_LOG, logging.INFO, "serving metrics",
                  url=f"http://{s.metrics_host}:{port}/metrics")
        out = _Outputs.create(out_dir, resume=True)
        try:
            self._start_audits(live=True)
        except BaseException:
            out.close()
            server.shutdown()
            raise
        stopped_by = "end of input"
        try:
            for _ in self._consume(events, out, log_alerts=True):
                if status is not None:
                    status(self.core)
        except KeyboardInterrupt:  # a second signal: stop now, still write what we have
            self.stop_requested.set()
        finally:
            if self.stop_requested.is_set():
                stopped_by = "interrupt"
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        log_event(_LOG, logging.INFO, "stopping", reason=stopped_by)
        return self._finish(out)


def rederive_records(settings: Settings, events: Iterable[tuple[str, bytes]]
                     ) -> dict[str, list[bytes]]:
    """Run the core over archived events and return every audit record it writes, by decision.

    The records come out exactly as the store holds them (canonical JSON), so an auditor can
    compare bytes: same events, same configuration and same versions give the same records.
    """
    core = create_app(settings).core
    audits = InlineAudits(make_auditor(settings.core, settings.currency,
                                       core.context.config_hash, core.context.versions))
    out: dict[str, list[bytes]] = {}

    def keep(work: list[Any]) -> None:
        for decision_id, _, body in audits.submit(work):
            out.setdefault(decision_id, []).append(body)

    for _, raw in events:
        core.process(raw)
        keep(core.drain().audit_work)
    core.finish()
    keep(core.drain().audit_work)
    return out


def create_app(settings: Settings) -> Placewatch:
    """The one place where a run's parts are made and connected."""
    context = AuditContext(config_hash=settings.config_hash, versions=versions())
    core = AuditCore(settings.core, context)
    lock = threading.Lock()
    app = Placewatch(settings, core, registry := CollectorRegistry(auto_describe=False), lock)
    build_registry(core, lock, registry, lambda: app.audit_status)
    return app


@contextlib.contextmanager
def graceful_stop(app: Placewatch) -> Iterator[None]:
    """The first Ctrl-C or SIGTERM (docker stop, systemd) asks the run to stop after the
    current event; it then finishes cleanly (deep audits in flight, outputs written). A second
    signal interrupts at once."""
    import signal

    def handler(signum: int, frame: object) -> None:
        if app.stop_requested.is_set():
            raise KeyboardInterrupt
        app.stop_requested.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
