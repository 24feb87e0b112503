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
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import generate_latest, start_http_server
from prometheus_client.registry import CollectorRegistry

from detectors.pipeline import AuditContext, AuditCore
from detectors.summary import fairness_summary, wait_gaps
from streams.audit_store import SqliteAuditStore, canonical
from streams.errors import PlacewatchError
from streams.logs import log_event
from streams.metrics import build_registry
from streams.settings import Settings
from streams.sinks import JsonLinesSink, alert_line, dead_letter_line

__all__ = ["OUTPUT_FILES", "Placewatch", "create_app", "rederive_records", "sigterm_as_interrupt",
           "versions"]

OUTPUT_FILES = ("alerts.jsonl", "summary.json", "dead_letter.jsonl", "metrics.prom",
                "audit.sqlite", "audit.sqlite-wal", "audit.sqlite-shm")
_BATCH = 512
_LOG = logging.getLogger("placewatch")


def versions() -> tuple[tuple[str, str], ...]:
    """Code and library versions an audit record names."""
    out = [("python", platform.python_version())]
    for dist in ("placewatch", "msgspec", "orjson"):
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
    def create(cls, directory: Path) -> _Outputs:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for name in OUTPUT_FILES:
                (directory / name).unlink(missing_ok=True)
        except OSError as exc:
            raise PlacewatchError(f"cannot use output directory {directory}: {exc}") from exc
        return cls(directory, JsonLinesSink(directory / "alerts.jsonl"),
                   JsonLinesSink(directory / "dead_letter.jsonl"),
                   SqliteAuditStore(directory / "audit.sqlite"))

    def close(self) -> None:
        self.alerts.close()
        self.dead_letters.close()
        self.store.close()


class Placewatch:
    """One configured instance: a core, its metrics registry and a lock between them."""

    def __init__(self, settings: Settings, core: AuditCore, registry: CollectorRegistry,
                 lock: threading.Lock) -> None:
        self.settings = settings
        self.core = core
        self.registry = registry
        self.lock = lock
        self.inputs: list[str] = []

    # -- the loop shared by every mode ----------------------------------------------------

    def _consume(self, events: Iterable[tuple[str, bytes]], out: _Outputs,
                 log_alerts: bool) -> Iterator[int]:
        """Feed the core in batches; after each batch write its effects; yield progress."""
        core = self.core
        batch: list[tuple[str, bytes]] = []
        iterator = iter(events)
        while True:
            batch.clear()
            for item in iterator:
                batch.append(item)
                if len(batch) >= _BATCH:
                    break
            if not batch:
                return
            first = core.events_in
            with self.lock:
                for _, raw in batch:
                    core.process(raw)
            self._write(out, first, batch, log_alerts)
            yield len(batch)

    def _write(self, out: _Outputs, first: int, batch: list[tuple[str, bytes]],
               log_alerts: bool) -> None:
        effects = self.core.drain()
        out.dead_letters.write([dead_letter_line(d, batch[d.event_index - first][0])
                                for d in effects.dead_letters])
        out.alerts.write([alert_line(a) for a in effects.alerts])
        for checkpoint in out.store.append(effects.audit_records):
            log_event(_LOG, logging.DEBUG, "audit checkpoint", records=checkpoint[0],
                      head=checkpoint[1])
        if log_alerts:
            for alert in effects.alerts:
                log_event(_LOG, logging.WARNING, alert.summary, alert=alert.alert,
                          kind=alert.kind, attribute=alert.attribute, group=alert.group,
                          metric=alert.metric, value=alert.value, at=alert.at,
                          decision_id=alert.decision_id)

    def _finish(self, out: _Outputs) -> dict[str, Any]:
        with self.lock:
            self.core.finish()
        self._write(out, self.core.events_in, [], log_alerts=False)
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
        out = _Outputs.create(out_dir)
        try:
            for n in self._consume(events, out, log_alerts=False):
                if progress is not None:
                    progress(n)
        except BaseException:
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
        out = _Outputs.create(out_dir)
        stopped_by = "end of input"
        try:
            for _ in self._consume(events, out, log_alerts=True):
                if status is not None:
                    status(self.core)
        except KeyboardInterrupt:
            stopped_by = "interrupt"
        finally:
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
    out: dict[str, list[bytes]] = {}
    for _, raw in events:
        core.process(raw)
        for record in core.drain().audit_records:
            out.setdefault(str(record["decision_id"]), []).append(canonical(record))
    core.finish()
    return out


def create_app(settings: Settings) -> Placewatch:
    """The one place where a run's parts are made and connected."""
    context = AuditContext(config_hash=settings.config_hash, versions=versions())
    core = AuditCore(settings.core, context)
    lock = threading.Lock()
    return Placewatch(settings, core, build_registry(core, lock), lock)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM (docker stop, systemd) stop a live run as cleanly as Ctrl-C."""
    import signal

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

