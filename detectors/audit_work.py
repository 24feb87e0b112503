"""Deep-audit work: what the core queues and what a sampled decision's record is built from.

The core does not explain decisions itself. On the event path it queues, in stream order,
:class:`Learn` (what the shadow model learns from a keyed subsample of placements: the job's
inputs and the decision's label), :class:`LearnOutcome` (their joined ``deadline_met``) and
:class:`Explain` (a sampled decision: its raw bytes, what the core decoded from them, and the
state only the core knows at that moment). Each event is decoded once, by the core: these
items carry what the audit needs from the decoded event, so the audit never decodes again.
All are msgspec structs, so they cross a process boundary as msgpack. Off the event path,
:class:`RequestBuilder` turns an :class:`Explain` into the full :class:`AuditRequest`: the
job's inputs, the stored (redacted) event, the decision.
"""

from __future__ import annotations

import hashlib
from typing import Final

import msgspec
import orjson

from detectors.alerts import iso
from detectors.events import UNSET, Placement
from detectors.job_inputs import JobInputs, label_of

__all__ = ["AuditRequest", "Explain", "Learn", "LearnOutcome", "RequestBuilder", "WorkItem",
           "job_inputs"]

_MAX_CONTEXT: Final = 32
"""Keys of an event's ``features`` (decision context) the shadow model uses, at most."""


def job_inputs(event: Placement, keys: frozenset[str] | tuple[str, ...]) -> JobInputs:
    """What the scheduler knew about the job; only the attributes in ``keys`` are kept."""
    job = event.job
    cpu = memory = gpu = slack = runtime = None
    job_class = priority = None
    if job is not UNSET:
        requested = job.requested
        if requested is not UNSET:
            cpu = None if requested.cpu is UNSET else requested.cpu
            memory = None if requested.memory_gb is UNSET else requested.memory_gb
            gpu = None if requested.gpu is UNSET else requested.gpu
        if job.deadline is not UNSET:
            slack = (job.deadline - event.decided_at).total_seconds() / 3600.0
        job_class = None if job.job_class is UNSET else job.job_class
        priority = None if job.priority is UNSET else job.priority
    predicted = event.decision.predicted_runtime_s
    if predicted is not UNSET:
        runtime = predicted / 3600.0
    attributes = tuple(sorted((k, v) for k, v in event.attributes.items() if k in keys))
    context: tuple[tuple[str, float], ...] = ()
    if event.features is not UNSET:
        context = tuple(sorted(event.features.items())[:_MAX_CONTEXT])
    return JobInputs(cpu, memory, gpu, slack, runtime, job_class, priority, attributes, context)


def _stored_event(raw: bytes, extra: tuple[str, ...],
                  fields: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """The event text a record keeps: unaudited attributes (``extra``, sorted) dropped,
    configured fields redacted."""
    if not extra and not fields and raw.count(b'"attributes"') == 1:
        return raw.decode("utf-8"), ()  # the original text (a duplicated key is re-written)
    data = orjson.loads(raw)
    redacted = [f"attributes.{k}" for k in extra]
    for key in extra:
        del data["attributes"][key]
    for path in fields:
        *parents, leaf = path.split(".")
        node = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            node[leaf] = "[redacted]"
            redacted.append(path)
    return orjson.dumps(data).decode("utf-8"), tuple(redacted)


class RequestBuilder:
    """Turns an :class:`Explain` item into the full :class:`AuditRequest` (pure)."""

    def __init__(self, preferred_tiers: tuple[str, ...], redact_fields: tuple[str, ...] = (),
                 config_hash: str = "", versions: tuple[tuple[str, str], ...] = ()) -> None:
        self.preferred = frozenset(preferred_tiers)
        self.redact_fields = redact_fields
        self.config_hash = config_hash
        self.versions = versions

    def request(self, item: Explain) -> AuditRequest:
        stored, redacted = _stored_event(item.raw, item.unaudited, self.redact_fields)
        return AuditRequest(
            decision_id=item.decision_id,
            event_index=item.event_index,
            decided_at=item.decided_at,
            reasons=item.reasons,
            sample_draw=round(item.sample_draw, 9),
            event_sha256=hashlib.sha256(item.raw).hexdigest(),
            event=stored,
            redacted=redacted,
            inputs=item.inputs,
            action=item.action,
            label=label_of(item.action, item.tier),
            preferred=item.action == "place" and item.tier in self.preferred,
            price_per_hour=item.price_per_hour,
            predicted_cost=item.predicted_cost,
            group_state={
                attribute: {"group": name, "decisions": decisions, "placed": placed,
                            "preferred_rate": round(preferred / tiered, 6) if tiered else None}
                for attribute, name, decisions, placed, preferred, tiered in item.groups},
            open_alerts=item.open_alerts,
            config_hash=self.config_hash,
            versions=self.versions,
        )


class AuditRequest(msgspec.Struct, frozen=True):
    """Everything the core knew about a sampled decision, at the moment it was decided."""

    decision_id: str
    event_index: int
    decided_at: str
    reasons: tuple[str, ...]
    sample_draw: float
    event_sha256: str
    """SHA-256 of the event's original bytes (before any redaction)."""
    event: str
    """The event as stored: the original text, or with configured fields redacted."""
    redacted: tuple[str, ...]
    inputs: JobInputs
    action: str
    label: str
    preferred: bool
    price_per_hour: float | None
    predicted_cost: float | None
    group_state: dict[str, dict[str, object]]
    open_alerts: tuple[tuple[str, str, str, str], ...]
    """(kind, attribute, group, metric) of alerts open on this decision's groups."""
    config_hash: str
    versions: tuple[tuple[str, str], ...]


class Learn(msgspec.Struct, frozen=True, tag="learn", array_like=True, gc=False):
    """A placement the shadow model learns from, as the core decoded it (strings, numbers and
    :class:`~detectors.job_inputs.JobInputs`: never in a reference cycle, so not tracked by
    the collector)."""

    decision_id: str
    inputs: JobInputs
    """The job's inputs (:func:`job_inputs`, audited attributes only)."""
    label: str
    """The decision as one label (:func:`~detectors.job_inputs.label_of`)."""
    price_per_hour: float | None
    held: int
    """What holding the inputs until the outcome takes, at most: the decoded event's
    :func:`~detectors.events.held_bytes` (the inputs are a part of it)."""

    @classmethod
    def of(cls, event: Placement, keys: tuple[str, ...], held: int) -> Learn:
        decision = event.decision
        return cls(event.decision_id, job_inputs(event, keys),
                   label_of(decision.action, decision.tier or None),
                   None if decision.price_per_hour is UNSET else decision.price_per_hour, held)


class LearnOutcome(msgspec.Struct, frozen=True, tag="outcome", array_like=True):
    """Whether a placement the shadow model learned from met its deadline."""

    decision_id: str
    met: bool


class Explain(msgspec.Struct, frozen=True, tag="explain", array_like=True):
    """A sampled decision: its raw bytes, what the core decoded from them, and what only the
    core knew at that moment."""

    raw: bytes
    event_index: int
    reasons: tuple[str, ...]
    sample_draw: float
    groups: list[tuple[str, str, int, int, int, int]]
    """Per group of the decision: (attribute, group, decisions, placed, preferred, tiered)."""
    open_alerts: tuple[tuple[str, str, str, str], ...]
    decision_id: str
    decided_at: str
    inputs: JobInputs
    """The job's inputs (:func:`job_inputs`, audited attributes only)."""
    action: str
    tier: str | None
    price_per_hour: float | None
    predicted_cost: float | None
    unaudited: tuple[str, ...]
    """The event's attributes that are not audited (sorted): the stored event drops them."""

    @classmethod
    def of(cls, event: Placement, raw: bytes, event_index: int, reasons: tuple[str, ...],
           sample_draw: float, keys: tuple[str, ...],
           groups: list[tuple[str, str, int, int, int, int]],
           open_alerts: tuple[tuple[str, str, str, str], ...]) -> Explain:
        decision = event.decision
        return cls(raw, event_index, reasons, sample_draw, groups, open_alerts,
                   event.decision_id, iso(event.decided_at), job_inputs(event, keys),
                   decision.action, None if decision.tier is UNSET else decision.tier,
                   None if decision.price_per_hour is UNSET else decision.price_per_hour,
                   None if decision.predicted_cost is UNSET else decision.predicted_cost,
                   tuple(sorted(k for k in event.attributes if k not in keys)))


WorkItem = Learn | LearnOutcome | Explain
