"""File sinks: alerts and dead letters as JSON lines (``alerts.jsonl``, ``dead_letter.jsonl``).

Each flushes after every batch; with ``fsync`` its :meth:`durable` also forces the file to
disk, so a live run's acknowledged batches survive a crash of the machine, not only of the
process. A replay can always be run again from its input and does not pay for it.
"""

from __future__ import annotations

import abc
import base64
import os
from pathlib import Path
from typing import IO

import msgspec
import orjson

from detectors.alerts import Alert
from detectors.events import OversizedLine
from detectors.pipeline import DeadLetter
from streams.sinks.base import Batch

__all__ = ["AlertsFile", "DeadLettersFile", "JsonLinesFile", "alert_line", "dead_letter_line",
           "open_output", "write_atomically"]

_ALERT_ENCODER = msgspec.json.Encoder()


def alert_line(alert: Alert) -> bytes:
    """One ``alerts.jsonl`` line (field order fixed by :class:`Alert`)."""
    return _ALERT_ENCODER.encode(alert) + b"\n"


def dead_letter_line(letter: DeadLetter, source: str) -> bytes:
    """One ``dead_letter.jsonl`` line: reason, where it came from, and the original bytes.

    The bytes are kept as text in ``raw`` when they are valid UTF-8, else base64 in
    ``raw_base64``: either way the original input can be restored exactly.
    """
    record: dict[str, object] = {
        "event_index": letter.event_index,
        "source": source,
        "reason": letter.reason,
        "detail": letter.detail,
    }
    raw = letter.raw
    if isinstance(raw, OversizedLine):  # only its first bytes were kept
        record["raw_truncated"] = True
        record["length"] = raw.length
        record["sha256"] = raw.sha256
    try:
        record["raw"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        record["raw_base64"] = base64.b64encode(raw).decode("ascii")
    return orjson.dumps(record) + b"\n"


def open_output(path: Path, append: bool) -> IO[bytes]:
    """Open an output file for writing without following a symbolic link planted in its
    place (an ``OSError`` ``ELOOP`` then, instead of writing wherever the link points)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    flags |= os.O_APPEND if append else os.O_TRUNC
    return os.fdopen(os.open(path, flags, 0o644), "ab" if append else "wb")


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step (a temporary file beside it, flushed to disk,
    then renamed over it): a reader sees the old file or the new one, never half of one, and a
    symbolic link at ``path`` is replaced, not followed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class JsonLinesFile(abc.ABC):
    """Appends a batch's lines to a file, flushing after each batch."""

    def __init__(self, path: Path, append: bool = False, fsync: bool = False) -> None:
        self.path = path
        self.name = path.name
        self._file: IO[bytes] = open_output(path, append)
        self._fsync = fsync
        self._dirty = False
        self.lines = 0

    @abc.abstractmethod
    def lines_of(self, batch: Batch) -> list[bytes]:
        """The lines this file takes from a batch."""

    def write(self, batch: Batch) -> None:
        lines = self.lines_of(batch)
        if lines:
            self._file.writelines(lines)
            self._file.flush()
            self.lines += len(lines)
            self._dirty = True

    def durable(self) -> None:
        if self._dirty and self._fsync:
            os.fsync(self._file.fileno())
        self._dirty = False

    def close(self) -> None:
        self._file.close()


class AlertsFile(JsonLinesFile):
    """``alerts.jsonl``: both edges of every alert, in the order they happened."""

    def lines_of(self, batch: Batch) -> list[bytes]:
        return [alert_line(a) for a in batch.alerts]


class DeadLettersFile(JsonLinesFile):
    """``dead_letter.jsonl``: every rejected event with its reason and exact bytes."""

    def lines_of(self, batch: Batch) -> list[bytes]:
        return [dead_letter_line(letter, source) for letter, source in batch.dead_letters]
