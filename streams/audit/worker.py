"""Where deep audits run: inline (replay, reproducible) or in a worker process (live).

Both take the core's audit work in stream order and give back finished audit records.

- :class:`InlineAudits` applies every item at once. File replay and ``audit replay`` use it:
  nothing is ever deferred, so the same events always give the same records.
- :class:`ProcessAudits` runs a :class:`~detectors.deep_audit.DeepAuditor` in a separate
  process, so the event path never waits for a counterfactual search (Python threads would
  share one interpreter lock). Work goes over a local pipe as msgpack (no pickle), in one
  message per batch. The backlog is bounded: when ``backlog`` sampled decisions are still
  being explained, the next one is written at once as a *deferred* record (everything but the
  explanations, which ``audit replay`` can derive later) and counted; when the worker is
  further behind than ``backlog × 50`` items (at least 4,096), training examples are skipped
  and counted (the
  records name the model version they were explained with, so the difference is visible).
  Nothing is dropped silently.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import msgspec

from detectors.audit_work import Explain, Learn, LearnOutcome, RequestBuilder, WorkItem
from detectors.config import CoreConfig
from detectors.counterfactual import SearchSpace
from detectors.deep_audit import DeepAuditor, deferred_record
from streams.audit.store import seal
from streams.errors import PlacewatchError

__all__ = ["AuditStatus", "InlineAudits", "ProcessAudits", "Sealed", "make_auditor"]

Sealed = tuple[str, str, bytes]
"""A finished record as the store takes it: ``(decision_id, decided_at, canonical JSON)``."""
_seal = seal

_ITEMS: Final = msgspec.msgpack.Decoder(list[Learn | LearnOutcome | Explain])
_ENCODER: Final = msgspec.msgpack.Encoder()
_RESULT: Final = msgspec.msgpack.Decoder(dict[str, Any])
_START_TIMEOUT_S: Final = 60.0


@dataclass(frozen=True, slots=True)
class AuditorParams:
    """How to build a :class:`DeepAuditor` (plain values: crosses the process boundary)."""

    preferred_tiers: tuple[str, ...]
    currency: str
    min_examples: int
    cpu: tuple[float, ...]
    memory_gb: tuple[float, ...]
    gpu: tuple[float, ...]
    deadline_h: tuple[float, ...]
    max_changes: int
    alternatives: int
    redact_fields: tuple[str, ...]
    config_hash: str
    versions: tuple[tuple[str, str], ...]
    max_features: int = 1024

    @classmethod
    def from_config(cls, config: CoreConfig, currency: str, config_hash: str = "",
                    versions: tuple[tuple[str, str], ...] = ()) -> AuditorParams:
        return cls(config.preferred_tiers, currency, config.shadow_min_examples,
                   config.audit_cpu_sizes, config.audit_memory_sizes_gb, config.audit_gpu_sizes,
                   config.audit_deadline_extensions_h, config.audit_max_changes,
                   config.audit_alternatives, config.audit_redact_fields, config_hash, versions,
                   config.shadow_max_features)

    def builder(self) -> RequestBuilder:
        return RequestBuilder(self.preferred_tiers, self.redact_fields, self.config_hash,
                              self.versions)

    def build(self) -> DeepAuditor:
        space = SearchSpace(self.cpu, self.memory_gb, self.gpu, self.deadline_h,
                            self.max_changes, self.alternatives)
        return DeepAuditor(self.preferred_tiers, space, self.currency, self.min_examples,
                           builder=self.builder(), max_features=self.max_features)


def make_auditor(config: CoreConfig, currency: str, config_hash: str = "",
                 versions: tuple[tuple[str, str], ...] = ()) -> DeepAuditor:
    return AuditorParams.from_config(config, currency, config_hash, versions).build()


@dataclass(slots=True)
class AuditStatus:
    """What the metrics report about deep audits."""

    explained: int = 0
    deferred: int = 0
    training_skipped: int = 0
    backlog: int = 0
    backlog_limit: int | None = None
    """Beyond this many unexplained, new samples are deferred (None: inline, no backlog)."""
    shadow_examples: int = 0
    shadow_accuracy: float | None = None
    deadline_examples: int = 0
    deadline_accuracy: float | None = None
    shadow_features: int = 0
    """Named feature columns the audit models have (``shadow_max_features`` at most)."""
    shadow_features_folded: int = 0
    """Learned examples' columns that went to an overflow column because the cap was hit."""
    group_flips: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    """(attribute, group) -> (flipped, checked) since start (the shadow's group flips)."""

    def add_flips(self, counts: Iterable[Sequence[Any]]) -> None:
        """Add the auditor's deltas. Each cell is replaced whole, so a scrape reading it from
        another thread never sees a flip without its check."""
        for attribute, group, flipped, checked in counts:
            key = (str(attribute), str(group))
            old = self.group_flips.get(key, (0, 0))
            self.group_flips[key] = (old[0] + int(flipped), old[1] + int(checked))


_MODEL_FIELDS: Final = ("shadow_examples", "shadow_accuracy", "deadline_examples",
                        "deadline_accuracy", "shadow_features", "shadow_features_folded")


def _model_status(auditor: DeepAuditor) -> dict[str, Any]:
    return {"shadow_examples": auditor.shadow.version,
            "shadow_accuracy": auditor.shadow.accuracy,
            "deadline_examples": auditor.deadline.version,
            "deadline_accuracy": auditor.deadline.accuracy,
            "shadow_features": len(auditor.vocabulary),
            "shadow_features_folded": auditor.vocabulary.folded,
            "group_flips": auditor.take_flip_counts()}


def _update(status: AuditStatus, model: dict[str, Any]) -> None:
    for key in _MODEL_FIELDS:
        setattr(status, key, model[key])
    status.add_flips(model["group_flips"])


class InlineAudits:
    """Applies audit work synchronously (reproducible; used by replay)."""

    def __init__(self, auditor: DeepAuditor) -> None:
        self.auditor = auditor
        self.status = AuditStatus()

    unsealed_since: int | None = None
    """Nothing is ever held: every item's record comes back from :meth:`submit`."""

    def submit(self, items: list[WorkItem], since: int = 0) -> list[Sealed]:
        records = []
        for item in items:
            record = self.auditor.apply(item)
            if record is not None:
                records.append(_seal(record))
        if items:
            self.status.explained += len(records)
            _update(self.status, _model_status(self.auditor))
        return records

    def abort(self) -> None:
        """Nothing runs beside the caller: nothing to stop."""
        return None

    def close(self) -> list[Sealed]:
        return []


def _params(payload: dict[str, Any]) -> AuditorParams:
    def plain(value: Any) -> Any:
        return tuple(plain(v) for v in value) if isinstance(value, list) else value
    return AuditorParams(**{k: plain(v) for k, v in payload.items()})


def _serve(conn: multiprocessing.connection.Connection, params: dict[str, Any]) -> None:
    """The worker process: apply batches in order, send back records and model status.

    A reader thread takes every batch off the pipe as soon as it arrives, so the parent's
    send never waits for a deep audit to finish (the parent bounds what is in flight). It
    ignores Ctrl-C and SIGTERM: the parent decides when to stop and drains it first.
    """
    import queue
    import signal
    import sys
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.setswitchinterval(0.0005)  # let the reader in promptly between deep audits
    auditor = _params(params).build()
    inbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def read() -> None:
        while True:
            try:
                payload = conn.recv_bytes()
            except (EOFError, OSError):
                inbox.put(None)
                return
            inbox.put(payload)
            if not payload:
                return

    threading.Thread(target=read, name="audit-reader", daemon=True).start()
    conn.send_bytes(b"ready")
    while True:
        payload = inbox.get()
        if payload is None:
            return
        if not payload:
            conn.send_bytes(_ENCODER.encode({"done": 0, "records": [], "final": True}))
            return
        items = _ITEMS.decode(payload)
        records = [_seal(r) for r in (auditor.apply(item) for item in items) if r is not None]
        conn.send_bytes(_ENCODER.encode({"done": len(items), "explained": len(records),
                                         "records": records, **_model_status(auditor)}))


class ProcessAudits:
    """Deep audits in a worker process, beside the event path, with a bounded backlog."""

    def __init__(self, params: AuditorParams, backlog: int = 1000) -> None:
        if backlog < 1:
            raise ValueError(f"backlog must be >= 1, got {backlog}")
        self.backlog = backlog
        self.status = AuditStatus(backlog_limit=backlog)
        self._builder = params.builder()
        self._pending_items = 0
        self._pending_explains: list[int] = []  # explains per batch in flight
        self._pending_since: list[int] = []  # the first event each batch in flight came from
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        payload = msgspec.to_builtins(asdict(params))
        self._process = context.Process(target=_serve, args=(child, payload),
                                        name="placewatch-deep-audit", daemon=True)
        try:
            self._process.start()
        except OSError as exc:
            raise PlacewatchError(f"cannot start the deep-audit worker: {exc}") from exc
        child.close()
        try:  # the worker imports numpy and river first: do not let the event path wait on it
            if not self._conn.poll(_START_TIMEOUT_S) or self._conn.recv_bytes() != b"ready":
                raise PlacewatchError("the deep-audit worker did not start within "
                                      f"{_START_TIMEOUT_S:.0f} s")
        except (EOFError, OSError) as exc:
            raise PlacewatchError(f"the deep-audit worker failed to start: {exc}") from exc

    def _receive(self, block: bool) -> list[Sealed]:
        records: list[Sealed] = []
        while self._pending_explains and (block or self._conn.poll()):
            try:
                result = _RESULT.decode(self._conn.recv_bytes())
            except EOFError:
                raise PlacewatchError("the deep-audit worker stopped unexpectedly") from None
            self._pending_items -= result["done"]
            self._pending_explains.pop(0)
            self._pending_since.pop(0)
            records.extend((str(d), str(t), bytes(b)) for d, t, b in result["records"])
            self.status.explained += result["explained"]
            _update(self.status, result)
            block = False
        self.status.backlog = sum(self._pending_explains)
        return records

    @property
    def unsealed_since(self) -> int | None:
        """The first input event whose audit work the worker still holds (None: nothing)."""
        return self._pending_since[0] if self._pending_since else None

    def submit(self, items: list[WorkItem], since: int = 0) -> list[Sealed]:
        """Send a batch (of work that came from input events ``since`` onwards); return
        deferred records now and whatever the worker has finished."""
        records = self._receive(block=False)
        if not items:
            return records
        in_flight = sum(self._pending_explains)
        send: list[WorkItem] = []
        explains = 0
        for item in items:
            if isinstance(item, Explain):
                if in_flight + explains >= self.backlog:
                    self.status.deferred += 1
                    records.append(_seal(deferred_record(self._builder.request(item),
                                                         self.backlog)))
                    continue
                explains += 1
            elif self._pending_items + len(send) >= max(self.backlog * 50, 4096):
                self.status.training_skipped += 1
                continue
            send.append(item)
        if send:
            try:
                self._conn.send_bytes(_ENCODER.encode(send))
            except OSError as exc:
                raise PlacewatchError(f"the deep-audit worker stopped unexpectedly: {exc}"
                                      ) from exc
            self._pending_items += len(send)
            self._pending_explains.append(explains)
            self._pending_since.append(since)
        self.status.backlog = sum(self._pending_explains)
        return records

    def abort(self) -> None:
        """Stop the worker now, whatever it holds (the error path: it ignores SIGINT and
        SIGTERM, so it is killed; records in flight are lost, as a crash would lose them)."""
        with contextlib.suppress(OSError):
            self._conn.close()
        if self._process.is_alive():
            self._process.kill()
        self._process.join(timeout=10)

    def close(self) -> list[Sealed]:
        """Wait for every record in flight, then stop the worker."""
        records = self._receive(block=True) if self._pending_explains else []
        while self._pending_explains:
            records.extend(self._receive(block=True))
        try:
            self._conn.send_bytes(b"")
            self._conn.recv_bytes()
        except (EOFError, OSError):
            pass
        self._conn.close()
        self._process.join(timeout=10)
        return records
