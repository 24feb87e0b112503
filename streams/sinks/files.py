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
from detectors.pipeline import DeadLetter
from streams.sinks.base import Batch

__all__ = ["AlertsFile", "DeadLettersFile", "JsonLinesFile", "alert_line", "dead_letter_line"]

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
    try:
        record["raw"] = letter.raw.decode("utf-8")
    except UnicodeDecodeError:
        record["raw_base64"] = base64.b64encode(letter.raw).decode("ascii")
    return orjson.dumps(record) + b"\n"


class JsonLinesFile(abc.ABC):
    """Appends a batch's lines to a file, flushing after each batch."""

    def __init__(self, path: Path, append: bool = False, fsync: bool = False) -> None:
        self.path = path
        self.name = path.name
        self._file: IO[bytes] = path.open("ab" if append else "wb")
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
