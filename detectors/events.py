"""Wire contract v1: the placement and outcome events, decoded strictly.

The types mirror ``shared/contract/*.schema.json`` field for field. An optional field that is
absent reads as :data:`UNSET` (``null`` is not a value the schema allows, so it is rejected).
Decoding is done by msgspec, which validates types, enums, lengths and bounds in one pass
(~1 µs per event); :func:`decode_event` adds the rules a JSON Schema cannot state
(non-negative durations) and turns every failure into a :class:`Rejection` with a stable
reason code, so that a caller can dead-letter it without ever seeing an exception.

>>> ev = decode_event(b'{"event_type": "outcome", "schema_version": 1, "decision_id": "d-1",'
...                   b' "finished_at": "2026-11-02T09:00:00Z", "status": "succeeded"}')
>>> ev.decision_id, ev.status
('d-1', 'succeeded')
>>> decode_event(b'{"event_type": "outcome"}').reason
'missing_field'
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Final, Literal

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "MAX_EVENT_BYTES",
    "MAX_INTEGER",
    "REJECTION_REASONS",
    "RESERVED_IDS",
    "UNSET",
    "Decision",
    "Job",
    "Outcome",
    "Override",
    "OversizedLine",
    "Placement",
    "Rejection",
    "Requested",
    "SchedulerInfo",
    "decode_event",
    "held_bytes",
]

RESERVED_IDS: Final = ("__hold__", "__release__", "__purge__")
"""``decision_id`` values the audit store keeps for its own retention records: an event that
uses one is rejected (``invalid_value``), so no input can pass for a hold or a purge."""
MAX_EVENT_BYTES: Final = 1 << 20
"""Largest accepted event (1 MiB); larger payloads are rejected as ``too_large``."""

_FLOAT_MAX: Final = 1.7976931348623157e308

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Timestamp = Annotated[dt.datetime, msgspec.Meta(tz=True)]
NonNegative = Annotated[float, msgspec.Meta(ge=0, le=_FLOAT_MAX)]
Finite = Annotated[float, msgspec.Meta(ge=-_FLOAT_MAX, le=_FLOAT_MAX)]
MAX_INTEGER: Final = 2**53 - 1
"""Integers are accepted within ±(2⁵³ − 1), the range every JSON reader holds exactly
(I-JSON, RFC 7493); beyond it an event is rejected as ``out_of_range``."""
Integer = Annotated[int, msgspec.Meta(ge=-MAX_INTEGER, le=MAX_INTEGER)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0, le=MAX_INTEGER)]
AttributeValue = Annotated[str, msgspec.Meta(max_length=256)]
Action = Literal["place", "queue", "preempt", "reject"]
Status = Literal["succeeded", "failed", "preempted", "killed", "timeout"]


# Every event struct is gc=False: decoded JSON holds only strings, numbers, timestamps and flat
# dicts of them, so an event can never be part of a reference cycle, and the collector need
# not walk the tens of thousands held for the join (with gc.freeze() at start, streams/app.py,
# the longest full collection in `placewatch bench audit` fell from 151-185 ms to 45-63 ms).
# Nothing may store an object in an event's dicts (attributes, features): they stay flat.


class SchedulerInfo(msgspec.Struct, frozen=True, gc=False):
    """Which scheduler made the decision."""

    name: str | UnsetType = UNSET
    version: str | UnsetType = UNSET
    policy: str | UnsetType = UNSET


class Requested(msgspec.Struct, frozen=True, gc=False):
    """Resources the job asked for."""

    cpu: NonNegative | UnsetType = UNSET
    memory_gb: NonNegative | UnsetType = UNSET
    gpu: NonNegative | UnsetType = UNSET


class Job(msgspec.Struct, frozen=True, gc=False):
    """The job as submitted."""

    job_class: str | UnsetType = UNSET
    priority: Integer | UnsetType = UNSET
    requested: Requested | UnsetType = UNSET
    deadline: Timestamp | UnsetType = UNSET
    budget_code: str | UnsetType = UNSET


class Decision(msgspec.Struct, frozen=True, gc=False):
    """What the scheduler decided, and what it predicted."""

    action: Action
    tier: str | UnsetType = UNSET
    instance_type: str | UnsetType = UNSET
    node: str | UnsetType = UNSET
    region: str | UnsetType = UNSET
    hardware_generation: NonNegativeInt | UnsetType = UNSET
    price_per_hour: NonNegative | UnsetType = UNSET
    predicted_runtime_s: NonNegative | UnsetType = UNSET
    predicted_cost: NonNegative | UnsetType = UNSET
    predicted_wait_s: NonNegative | UnsetType = UNSET


class Override(msgspec.Struct, frozen=True, gc=False):
    """A manual override of the scheduler's choice."""

    by: str | UnsetType = UNSET
    reason: str | UnsetType = UNSET
    expires_at: Timestamp | UnsetType = UNSET


class Placement(msgspec.Struct, frozen=True, gc=False, tag_field="event_type", tag="placement"):
    """One scheduling decision (``event_type: placement``)."""

    schema_version: Literal[1]
    decision_id: Id
    job_id: Id
    decided_at: Timestamp
    attributes: Annotated[dict[str, AttributeValue], msgspec.Meta(max_length=32)]
    decision: Decision
    submitted_at: Timestamp | UnsetType = UNSET
    scheduler: SchedulerInfo | UnsetType = UNSET
    job: Job | UnsetType = UNSET
    features: Annotated[dict[str, Finite], msgspec.Meta(max_length=256)] | UnsetType = UNSET
    override: Override | UnsetType = UNSET

    @property
    def queue_wait_s(self) -> float | None:
        """``decided_at - submitted_at`` in seconds, when both are present."""
        if self.submitted_at is UNSET:
            return None
        return (self.decided_at - self.submitted_at).total_seconds()


class Outcome(msgspec.Struct, frozen=True, gc=False, tag_field="event_type", tag="outcome"):
    """What became of the job (``event_type: outcome``)."""

    schema_version: Literal[1]
    decision_id: Id
    finished_at: Timestamp
    status: Status
    job_id: Id | UnsetType = UNSET
    started_at: Timestamp | UnsetType = UNSET
    actual_runtime_s: NonNegative | UnsetType = UNSET
    actual_cost: NonNegative | UnsetType = UNSET
    deadline_met: bool | UnsetType = UNSET


class OversizedLine(bytes):
    """An input line past the event limit, kept as its first :attr:`KEEP` bytes with its
    length and SHA-256 (a source reads it in chunks; it is never held whole). Decoding rejects
    it as ``too_large``; its dead letter holds these bytes and says what they are."""

    KEEP: Final = 4096
    length: int
    sha256: str

    def __new__(cls, head: bytes, length: int, sha256: str) -> OversizedLine:
        line = super().__new__(cls, head[:cls.KEEP])
        line.length = length
        line.sha256 = sha256
        return line

    def __reduce__(self) -> tuple[type[OversizedLine], tuple[bytes, int, str]]:
        return (OversizedLine, (bytes(self), self.length, self.sha256))


class Rejection(msgspec.Struct, frozen=True):
    """Why an input could not be accepted; ``reason`` is one of :data:`REJECTION_REASONS`."""

    reason: str
    detail: str


REJECTION_REASONS: Final = (
    "invalid_json",
    "invalid_timestamp",
    "invalid_utf8",
    "invalid_value",
    "missing_field",
    "naive_timestamp",
    "negative_duration",
    "negative_value",
    "non_finite_number",
    "out_of_range",
    "too_large",
    "unsupported_schema_version",
    "wrong_type",
)
"""Every reason code a :class:`Rejection` can carry (documented in docs/contract.md)."""

_DECODER: Final = msgspec.json.Decoder(Placement | Outcome)


def _classify(message: str) -> str:
    if message.startswith("Object missing required field"):
        return "missing_field"
    if "$.schema_version" in message:
        return "unsupported_schema_version"
    if "with a timezone component" in message:
        return "naive_timestamp"
    if "RFC3339" in message:
        return "invalid_timestamp"
    if "Number out of range" in message:
        return "non_finite_number"
    if f"<= {MAX_INTEGER}" in message or f">= -{MAX_INTEGER}" in message:
        return "out_of_range"
    if ">= 0" in message:
        return "negative_value"
    if message.startswith("Expected `") and ", got `" in message:
        return "wrong_type"
    return "invalid_value"


_NON_FINITE: Final = re.compile(r"[:\[,]\s*-?(NaN|Infinity)\s*[,}\]]")
_EARLIEST: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LATEST: Final = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


def _malformed_reason(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    if _NON_FINITE.search(text):
        return "non_finite_number"
    return "invalid_json"


def _out_of_range(*stamps: dt.datetime | UnsetType) -> bool:
    return any(s is not UNSET and not _EARLIEST <= s < _LATEST for s in stamps)


def decode_event(raw: bytes) -> Placement | Outcome | Rejection:
    """Decode one event; never raises.

    >>> decode_event(b'{"event_type": "placement", "schema_version": 1, "decision_id": "d",'
    ...              b' "job_id": "j", "decided_at": "2026-11-02T08:15:00", "attributes": {},'
    ...              b' "decision": {"action": "place"}}').reason
    'naive_timestamp'
    >>> decode_event(b'{"price": NaN}').reason
    'non_finite_number'
    """
    if isinstance(raw, OversizedLine):
        return Rejection("too_large", f"line is {raw.length} bytes (sha256 {raw.sha256}); the "
                         f"limit is {MAX_EVENT_BYTES}; its first {len(raw)} bytes are kept")
    if len(raw) > MAX_EVENT_BYTES:
        return Rejection("too_large", f"event is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES}")
    try:
        event: Placement | Outcome = _DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        message = str(exc)
        return Rejection(_classify(message), message)
    except msgspec.DecodeError as exc:
        return Rejection(_malformed_reason(raw), str(exc))
    except UnicodeDecodeError as exc:  # msgspec raises this for bad UTF-8 inside a string
        return Rejection("invalid_utf8", str(exc))
    except RecursionError:
        return Rejection("too_large", "JSON nested too deeply")
    if event.decision_id in RESERVED_IDS:
        return Rejection("invalid_value", f"decision_id {event.decision_id!r} is reserved for "
                         "the audit store's retention records")
    if isinstance(event, Placement):
        job = event.job
        override = event.override
        if _out_of_range(event.decided_at, event.submitted_at,
                         UNSET if job is UNSET else job.deadline,
                         UNSET if override is UNSET else override.expires_at):
            return Rejection("invalid_timestamp", "a timestamp is outside 1970..2199")
        if event.submitted_at is not UNSET and event.decided_at < event.submitted_at:
            return Rejection("negative_duration", "decided_at is before submitted_at")
    else:
        if _out_of_range(event.finished_at, event.started_at):
            return Rejection("invalid_timestamp", "a timestamp is outside 1970..2199")
        if event.started_at is not UNSET and event.finished_at < event.started_at:
            return Rejection("negative_duration", "finished_at is before started_at")
    return event


_OBJECT_BYTES: Final = 1024
"""A decoded event's fixed cost in memory (its structs, timestamps and dicts), at most."""
_ENTRY_BYTES: Final = 112
"""What one ``attributes`` or ``features`` entry adds beyond its text, at most."""


def held_bytes(event: Placement | Outcome | Rejection, raw: bytes) -> int:
    """What holding a decoded event takes in memory, at most (for the buffers' byte caps): a
    fixed 1 KiB, its length (four times its length if it is not all ASCII or holds a ``\\u``
    escape: Python may keep a string's every character in 4 bytes), and 112 bytes per
    attribute or feature. Measured
    with tracemalloc it covers what decoding takes: 1,405 bytes for a typical 531-byte
    placement (1,891 charged), 19,390 for 256 short feature keys (32,879), 923,288 for 900 KB
    of long keys (929,644), 3.8 times the length for keys of ASCII and one emoji (4 times).
    A rejection holds its bytes only.

    >>> held_bytes(Rejection("invalid_json", "x"), b"{")
    1025
    """
    wide = not raw.isascii() or b"\\u" in raw  # may decode to characters beyond Latin-1
    size = _OBJECT_BYTES + (4 * len(raw) if wide else len(raw))
    if isinstance(event, Placement):
        features = event.features
        size += _ENTRY_BYTES * (len(event.attributes) + (0 if features is UNSET else len(features)))
    return size
