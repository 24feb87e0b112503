"""File sinks for embedded mode: alerts and dead letters as JSON lines."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import IO

import msgspec
import orjson

from detectors.alerts import Alert
from detectors.pipeline import DeadLetter

__all__ = ["JsonLinesSink", "alert_line", "dead_letter_line"]

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


class JsonLinesSink:
    """Appends lines to a file, flushing after each batch."""

    def __init__(self, path: Path, append: bool = False) -> None:
        self.path = path
        self._file: IO[bytes] = path.open("ab" if append else "wb")
        self.lines = 0

    def write(self, lines: list[bytes]) -> None:
        if lines:
            self._file.writelines(lines)
            self._file.flush()
            self.lines += len(lines)

    def close(self) -> None:
        self._file.close()
