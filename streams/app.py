"""The composition root: wires settings, core, sinks, metrics and a source into one run.

Data flows one way: source → :class:`~detectors.pipeline.AuditCore` → after every batch, the
drained effects (dead letters, alert edges, deep-audit records) → every
:class:`~streams.sinks.base.Sink`, then ``durable()`` on each; at scrape time, core state →
Prometheus. Every mode (``replay``, ``run``, ``audit replay`` and the benchmarks) builds its
pipeline here and runs the same loop, :meth:`Placewatch.consume`; they differ only in the
source and the sinks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib.metadata
import logging
import platform
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.registry import CollectorRegistry

from detectors.audit_work import Explain, LearnOutcome, WorkItem
from detectors.pipeline import AuditContext, AuditCore
from detectors.summary import fairness_summary
from streams.audit.store import CheckpointPublisher
from streams.audit.worker import (
    AuditorParams,
    AuditStatus,
    InlineAudits,
    ProcessAudits,
    Sealed,
    make_auditor,
)
from streams.errors import OutputError, PlacewatchError, cause
from streams.exposition import render, serve
from streams.health import ChainWatch, LiveHealth
from streams.logs import log_event
from streams.metrics import build_registry
from streams.report_schedule import ReportSchedule
from streams.settings import Settings
from streams.sinks.base import Batch, CheckpointWitness, Sink
from streams.sinks.directory import OUTPUT_FILES, RunDirectory
from streams.sinks.log import AlertLog
from streams.sinks.outbox import AlertOutbox
from streams.sources.live import Event, LiveReader

__all__ = ["AUDIT_FLUSH_BYTES", "AUDIT_FLUSH_ITEMS", "BATCH_BYTES", "BATCH_EVENTS",
           "CHUNKED_BATCH_EVENTS", "OUTPUT_FILES", "KafkaRun", "Placewatch", "create_app",
           "freeze_start_up", "graceful_stop", "rederive_records", "versions"]

BATCH_EVENTS = 512
"""Input events per batch: effects are drained and handed to the sinks after each."""
CHUNKED_BATCH_EVENTS = 2048
"""The same for a source read in fetches (Kafka): a fetch is up to 2,048 messages, and every
batch costs its sinks an fsync and the brokers an acknowledgement."""
BATCH_BYTES = 16 << 20
"""Input bytes per batch, at most (a batch's first event whatever its size): with
:data:`BATCH_EVENTS`, what a batch holds in memory at once."""
LIVE_BATCH_SECONDS = 0.2
"""A live run also closes a batch once its first event is this old, so a slow source's alerts
reach the sinks (and Alertmanager) without waiting for 512 events."""
AUDIT_FLUSH_ITEMS = 256
"""Audit work items gathered before they are handed on (about every 2,000 events): a hand-off
costs the event that pays it ~0.1-0.5 ms, so it should land on well under 1% of events."""
AUDIT_FLUSH_BYTES = 8 << 20
"""Or fewer, once what they hold adds up to this many bytes (a sampled decision's raw event; a
learned placement's :func:`~detectors.events.held_bytes`, a bound on its inputs)."""
_LOG = logging.getLogger("placewatch")


@contextlib.contextmanager
def _writing(sink: Sink) -> Iterator[None]:
    """A sink's I/O failure as one error naming the sink, the file and the cause (ENOSPC,
    EACCES, SQLITE_FULL, ...), never a traceback."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        where = getattr(exc, "filename", None) or getattr(sink, "path", None)
        raise OutputError(f"cannot write {sink.name}" + (f" ({where})" if where else "")
                          + f": {cause(exc)}") from exc


def versions() -> tuple[tuple[str, str], ...]:
    """Code and library versions an audit record names."""
    out = [("python", platform.python_version())]
    for dist in ("placewatch", "msgspec", "orjson", "river", "numpy"):
        try:
            out.append((dist, importlib.metadata.version(dist)))
        except importlib.metadata.PackageNotFoundError:
            out.append((dist, "unknown"))
    return tuple(out)


class Placewatch:
    """One configured instance: a core, its metrics registry, a lock between them, and the
    sinks configured beyond a run directory's own."""

    def __init__(self, settings: Settings, core: AuditCore, registry: CollectorRegistry,
                 lock: threading.Lock, sinks: Sequence[Sink] = ()) -> None:
        self.settings = settings
        self.core = core
        self.registry = registry
        self.lock = lock
        self.sinks = list(sinks)
        """Sinks every run of this instance also writes to (after its directory's own)."""
        self.inputs: list[str] = []
        self.audit_status = AuditStatus()
        self._audits: InlineAudits | ProcessAudits | None = None
        self._audit_work: list[WorkItem] = []
        self._audit_bytes = 0
        self._work_since: int | None = None
        """The first input event the audit work not yet handed on came from."""
        self._last_settled = 0
        """The commit point the latest batch reported."""
        self._settled_cap: int | None = None
        """After an interrupt inside a batch, the input before which everything is settled;
        nothing later is ever reported settled in this run."""
        self.health: LiveHealth | None = None
        self.findings_path: Path | None = None
        """The findings store of the run directory in use (read by the metrics)."""
        """A live run's own health figures (wall clock), exported while it runs."""
        self.stop_requested = threading.Event()
        """Set by the first Ctrl-C or SIGTERM (:func:`graceful_stop`): finish the batch, stop."""

    @property
    def _identity(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """What every audit record names: the configuration hash and the versions."""
        return self.core.context.config_hash, self.core.context.versions

    def start_audits(self, live: bool) -> InlineAudits | ProcessAudits:
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

    def consume(self, events: Iterable[Event], sinks: Sequence[Sink]) -> Iterator[int]:
        """Feed the core in batches; after each, deliver its effects; yield progress.

        Items are ``(source, raw)`` or, from a partitioned source, ``(source, raw,
        partition)``. A source with a ``partition_state()`` method (Kafka) tells the core's
        sequencer, before each batch, which partitions are assigned and which are quiet.
        """
        core = self.core
        batch: list[Event] = []
        stop = self.stop_requested
        partition_state = getattr(events, "partition_state", None)
        # a live source is read in a thread of its own, so a batch closes on time
        chunks = getattr(events, "chunks", None)
        reader = None
        size = BATCH_EVENTS if chunks is None else CHUNKED_BATCH_EVENTS
        if self.health is not None:
            reader = (LiveReader(chunks(), stop, chunked=True) if chunks is not None
                      else LiveReader(events, stop))
        iterator = iter(events) if reader is None else iter(())
        while not stop.is_set():
            batch.clear()
            received: float | None = None
            if reader is not None:
                received = reader.batch(batch, size, LIVE_BATCH_SECONDS, BATCH_BYTES)
            else:
                taken = 0
                for item in iterator:
                    batch.append(item)
                    taken += len(item[1])
                    if len(batch) >= BATCH_EVENTS or taken >= BATCH_BYTES or stop.is_set():
                        break
            if not batch:
                return
            first = core.events_in
            floor = core.sequencer.oldest_tag
            offered = core.sequencer.offered
            health = self.health
            try:
                with self.lock:
                    began = time.perf_counter()
                    if partition_state is not None:
                        assigned, quiet = partition_state()
                        core.sequencer.assign(assigned)
                        core.sequencer.quiet(quiet)
                    for item in batch:
                        core.offer(item[1], item[2] if len(item) > 2 else 0, item[0])
                    if health is not None:
                        health.processing_seconds += time.perf_counter() - began
                        health.batches += 1
                        health.last_batch_at = time.time()
            except KeyboardInterrupt:  # a second signal mid-batch: keep what was processed
                # an event may have been taken from the sequencer and not applied: nothing
                # from this batch on is ever reported settled (a restart reads it again)
                self._settled_cap = min(floor, self._last_settled)
                self.stop_requested.set()
                self.deliver(sinks, first, core.sequencer.offered - offered, floor,
                             received_at=received)
                raise
            before = self._last_settled
            try:
                self.deliver(sinks, first, len(batch), floor, received_at=received)
            except KeyboardInterrupt:  # effects drained and perhaps not all written
                self._settled_cap = min(floor, before)
                raise
            yield len(batch)

    def deliver(self, sinks: Sequence[Sink], first: int, arrived: int, floor: int,
                final: bool = False, received_at: float | None = None) -> None:
        """Drain the core, hand audit work on, give every sink the batch, then make it safe.

        ``first`` is the core's ``events_in`` before the batch, ``arrived`` the input events
        it took, ``floor`` the sequencer's oldest buffered arrival before it; ``final`` also
        closes the deep audits, so the closing batch carries every record still in flight;
        ``received_at`` is when a live batch's first event arrived.
        """
        effects = self.core.drain()
        audits = self._audits
        assert audits is not None, "start_audits() first"
        if effects.audit_work:
            if self._work_since is None:
                self._work_since = floor
            self._audit_work.extend(effects.audit_work)
            self._audit_bytes += sum(
                len(item.raw) if isinstance(item, Explain) else item.held
                for item in effects.audit_work if not isinstance(item, LearnOutcome))
        records: list[Sealed] = []
        if (len(self._audit_work) >= AUDIT_FLUSH_ITEMS or self._audit_bytes >= AUDIT_FLUSH_BYTES
                or final):
            work, self._audit_work = self._audit_work, []
            self._audit_bytes = 0
            records = audits.submit(work, self._work_since or 0)
            self._work_since = None
        if final:
            records.extend(audits.close())
        # every input before the oldest still buffered or still being explained is done
        settled = self.core.sequencer.oldest_tag
        for held in (self._work_since, audits.unsealed_since, self._settled_cap):
            if held is not None:
                settled = min(settled, held)
        self._last_settled = settled
        out = Batch(first, arrived, [(d, d.source) for d in effects.dead_letters],
                    effects.alerts, records, final, received_at, settled, effects.history)
        for sink in sinks:
            with _writing(sink):
                sink.write(out)
        for sink in sinks:
            with _writing(sink):
                sink.durable()

    def close_input(self, sinks: Sequence[Sink]) -> None:
        """End of input: the core's final evaluation and the closing batch."""
        floor = self.core.sequencer.oldest_tag
        first = self.core.events_in
        with self.lock:
            self.core.finish()
        self.deliver(sinks, first, 0, floor, final=True)

    def _abandon(self, sinks: Sequence[Sink]) -> None:
        """The error path: stop the deep audits at once and release every sink, so the
        process can exit (each step is attempted even if an earlier one fails)."""
        if self._audits is not None:
            self._audits.abort()
        for sink in sinks:
            try:
                sink.close()
            except Exception as exc:  # keep closing the others
                log_event(_LOG, logging.ERROR, "sink did not close cleanly", sink=sink.name,
                          error=cause(exc))

    def _finish(self, out: RunDirectory, sinks: Sequence[Sink]) -> dict[str, Any]:
        self.close_input(sinks)
        with _writing(out.store):
            records, head = out.store.head()
        for sink in sinks:  # the closing checkpoint's publication is safe too
            if isinstance(sink, CheckpointWitness):
                with _writing(sink):
                    sink.durable()
        summary = self.summary(records, head)
        out.write_final(
            orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n",
            render(self.registry))
        for sink in sinks:
            sink.close()
        log_event(_LOG, logging.INFO, "run finished", out=str(out.directory),
                  events_in=summary["events_in"], rejected=summary["rejected"],
                  alerts=summary["alerts"], audited=summary["audited"], audit_head=head)
        return summary

    def summary(self, audit_records: int, audit_head: str) -> dict[str, Any]:
        """Everything the contract lists for ``summary.json`` (deterministic: no wall clock)."""
        core = self.core
        cfg = core.config
        disparity_open: dict[str, list[str]] = {}
        for kind, attribute, group, _ in core.alert_book.open_keys:
            if kind == "disparity" and attribute is not None and group is not None:
                disparity_open.setdefault(attribute, []).append(group)
        summary: dict[str, Any] = {
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
            "late_events": core.sequencer.late,
            "reorder_forced": core.sequencer.forced,
            "requeues_forgotten": core.requeue.forgotten,
            "untracked_attribute_keys": core.ledger.untracked_keys,
            **({} if core.ledger.admission is None else {
                "attribute_admission": {
                    "admitted": list(core.ledger.admission.admitted),
                    "awaiting_occurrences": core.ledger.admission.awaiting,
                    "too_long_occurrences": core.ledger.admission.too_long,
                    "candidates": core.ledger.admission.candidates()}}),
            "audited": core.audited,
            "audit_deferred": self.audit_status.deferred,
            "shadow_training_skipped": self.audit_status.training_skipped,
            "shadow_features": self.audit_status.shadow_features,
            "shadow_features_folded": self.audit_status.shadow_features_folded,
            "alerts": core.alerts_fired,
            "alerts_by_kind": dict(sorted(core.alerts_by_kind.items())),
            "alerts_resolved": core.alerts_resolved,
            "alerts_open": len(core.alert_book),
            "alerts_closed_on_restart": core.alerts_closed_on_restart,
            "alerts_merged": core.alerts_merged,
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
                                         cfg.disparity_ratio_threshold, disparity_open),
        }
        sections = core.summary_sections()
        clash = sorted(sections.keys() & summary.keys())
        if clash:
            raise ValueError(f"detector summary sections {clash} clash with summary.json's own")
        summary.update(sections)
        return summary

    # -- modes ----------------------------------------------------------------------------

    def _checkpoint_publishers(self) -> list[CheckpointPublisher]:
        """Where the audit store publishes its checkpoints besides the log and the witness
        file: every sink of the instance that takes them (a Kafka run's audit topic)."""
        return [sink.publish_checkpoints for sink in self.sinks
                if isinstance(sink, CheckpointWitness)]

    def replay(self, events: Iterable[Event], out_dir: Path,
               progress: Any = None) -> dict[str, Any]:
        """Run a finite source to the end and write the contract's files to ``out_dir``."""
        out = RunDirectory.open(out_dir, resume=False,
                                history_retention_days=self.settings.history_retention_days,
                                signer=self.settings.signer(), witness=self.settings.witness,
                                publishers=self._checkpoint_publishers())
        try:
            self.findings_path = out.findings.store.path
            sinks = [*out.sinks, *self.sinks]
            self.start_audits(live=False)
            freeze_start_up()
            try:
                for n in self.consume(events, sinks):
                    if progress is not None:
                        progress(n)
            except BaseException:
                self._abandon(sinks)
                raise
            return self._finish(out, sinks)
        finally:
            out.release()

    def run_live(self, events: Iterable[Event], out_dir: Path,
                 status: Any = None, consumer: Any = None) -> dict[str, Any]:
        """Serve ``/metrics`` and process until the source ends or Ctrl-C / SIGTERM.

        ``consumer`` gives a Kafka source's lag and committed positions for the metrics."""
        s = self.settings
        # the directory first: a second run on it stops here, before it binds a port
        out = RunDirectory.open(out_dir, resume=True, fsync=True,
                                history_retention_days=self.settings.history_retention_days,
                                signer=s.signer(), witness=s.witness,
                                publishers=self._checkpoint_publishers())
        try:
            server, thread = serve(self.registry, s.metrics_host, s.metrics_port)
        except OSError as exc:
            out.close()
            raise PlacewatchError(f"cannot listen on {s.metrics_host}:{s.metrics_port}: "
                                  f"{exc.strerror or exc}; set metrics_port or "
                                  "PLACEWATCH_METRICS_PORT") from exc
        port = server.server_address[1]
        log_event(_LOG, logging.INFO, "serving metrics",
                  url=f"http://{s.metrics_host}:{port}/metrics")
        weak = s.sample_key_weakness()
        if weak:
            log_event(_LOG, logging.WARNING, "audit_sample_key is weak", problem=weak)
        self.findings_path = out.findings.store.path
        self.core.carry_over(out.left_open)
        sinks = [*out.sinks, AlertLog(s.runbook_base), *self.sinks]
        health = LiveHealth(consumer=consumer)
        chain = ChainWatch(out.store.path, health, s.audit_verify_interval_s).start()
        reports = ReportSchedule(s, out.directory, watermark=lambda: self.core.watermark).start()
        try:
            if s.alertmanager_urls or s.webhook_urls:
                outbox = AlertOutbox(out.directory / "alert_outbox.sqlite", s.alertmanager_urls,
                                     s.webhook_urls, s.alertmanager_resend_s,
                                     dict(s.alertmanager_extra_labels), s.runbook_base,
                                     s.alertmanager_resolve_grace_s)
                # firing rows alerts.jsonl does not hold open (a writer stopped between the
                # two) are resolved; the outbox is written first, so it never misses an edge
                # alerts.jsonl has
                outbox.reconcile(a.fingerprint for a in out.left_open)
                sinks.insert(0, outbox.start())
                health.delivery = outbox.stats
                # what an earlier run left undelivered goes out before this run's own edges
                outbox.first_pass(timeout=15)
            self.health = health
            self.start_audits(live=True)
            freeze_start_up()
        except BaseException:
            chain.close()
            reports.close()
            own = out.sinks
            for sink in sinks:
                if not any(sink is mine for mine in own):
                    sink.close()
            out.close()
            server.shutdown()
            raise
        stopped_by = "end of input"
        try:
            try:
                for _ in self.consume(events, sinks):
                    if status is not None:
                        status(self.core)
            except KeyboardInterrupt:  # a second signal: stop now, still write what we have
                self.stop_requested.set()
            finally:
                if self.stop_requested.is_set():
                    stopped_by = "interrupt"
                chain.close()
                reports.close()
                server.shutdown()
                server.server_close()
                thread.join(timeout=5)
            log_event(_LOG, logging.INFO, "stopping", reason=stopped_by)
            return self._finish(out, sinks)
        except BaseException:  # an error, or another signal while finishing: exit, never hang
            self._abandon(sinks)
            raise
        finally:
            out.release()


class _RecordsByDecision:
    """A sink that keeps every audit record body, by decision (``audit replay``)."""

    name = "records"

    def __init__(self) -> None:
        self.bodies: dict[str, list[bytes]] = {}

    def write(self, batch: Batch) -> None:
        for decision_id, _, body in batch.audit_records:
            self.bodies.setdefault(decision_id, []).append(body)

    def durable(self) -> None:
        return None

    def close(self) -> None:
        return None


def freeze_start_up() -> None:
    """Move what start-up made (modules, River, numpy, the configuration, the core) out of
    the collector's sight: it is never garbage, and a full collection then walks only what
    the run allocates (``gc.freeze``; ``placewatch bench audit`` measures the longest event
    with it). What an earlier run in the same process froze is released first, so its
    garbage is collected, not kept for good (tests and benches run many in one process)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def rederive_records(settings: Settings, events: Iterable[Event]
                     ) -> dict[str, list[bytes]]:
    """Run the pipeline over archived events and return every audit record it writes, by
    decision.

    The records come out exactly as the store holds them (canonical JSON), so an auditor can
    compare bytes: same events, same configuration and same versions give the same records.
    Deep audits run inline, as in ``replay``.
    """
    app = create_app(dataclasses.replace(settings, audit_worker="inline"))
    records = _RecordsByDecision()
    app.start_audits(live=False)
    try:
        for _ in app.consume(events, [records]):
            pass
    except BaseException:
        app._abandon([records])
        raise
    app.close_input([records])
    return records.bodies


class KafkaRun:
    """A Kafka source and its sinks, on one I/O loop: what ``run --source kafka://`` adds."""

    def __init__(self, settings: Settings, url: str, stop_when_idle: float | None,
                 max_events: int | None = None) -> None:
        from streams.kafka_client import KafkaLoop, bootstrap_of, make_producer
        from streams.sinks.kafka import KafkaEffects, KafkaOffsets
        from streams.sources.kafka import KafkaSource

        servers = bootstrap_of(url)
        self.loop = KafkaLoop()
        producer = source = None
        try:
            producer = make_producer(settings.kafka, servers, self.loop)
            source = KafkaSource(settings.kafka, servers, self.loop, stop_when_idle, max_events)
            # the commit goes last: after every other sink has made the batch safe
            self.sinks: list[Sink] = [KafkaEffects(producer, settings.kafka, self.loop),
                                      KafkaOffsets(source)]
        except BaseException:
            if source is not None:
                source.close()
            if producer is not None:
                with contextlib.suppress(Exception):
                    self.loop.call(producer.stop())
            self.loop.close()
            raise
        self.source = source
        self.inputs = [f"kafka:{settings.kafka.events_topic}"]

    def close(self) -> None:
        """Stop the clients (the sinks' close does, after a run) and the loop."""
        for sink in self.sinks:
            with contextlib.suppress(Exception):
                sink.close()
        self.loop.close()


def create_app(settings: Settings, sinks: Sequence[Sink] = ()) -> Placewatch:
    """The one place where a run's parts are made and connected.

    ``sinks`` are written to by every run of the instance, after the run directory's own
    files (the place for an outbox, a producer or a test's own sink).
    """
    context = AuditContext(config_hash=settings.config_hash, versions=versions())
    core = AuditCore(settings.core, context)
    lock = threading.Lock()
    app = Placewatch(settings, core, registry := CollectorRegistry(auto_describe=False), lock,
                     sinks)
    build_registry(core, lock, registry, lambda: app.audit_status, lambda: app.health,
                   lambda: app.findings_path)
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
