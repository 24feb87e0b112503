"""The history sink: the core's history windows as JSON lines, one file per UTC day.

``DIR/history/2026-11-23.jsonl`` holds every window that starts on that day
(:mod:`detectors.history`), in the order they closed. The weekly report reads the days its
week touches. Files older than ``history_retention_days`` (counted back from the newest
window written, in event time, so a replay prunes as the live run did, but never from a day
after today: one event from a clock years ahead must not age out everything) are deleted when
a new day begins. With ``fsync`` :meth:`durable` forces the open file to disk, as the other sinks
of a live run do.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO, Final

import msgspec

from detectors.groups import WAIT_BUCKETS
from detectors.history import GroupWindow, HistoryRecord
from streams.sinks.base import Batch
from streams.sinks.files import link_refused, open_output

__all__ = ["HISTORY_DIR", "HistoryFiles", "history_days", "read_history"]

HISTORY_DIR: Final = "history"
_DAY_FILE: Final = re.compile(r"^(\d{4}-\d{2}-\d{2})\.jsonl$")
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(HistoryRecord)


class HistoryFiles:
    """Appends history windows to their day's file."""

    name = "history"

    def __init__(self, directory: Path, retention_days: int, fsync: bool = False,
                 today: Callable[[], dt.date] = lambda: dt.datetime.now(dt.UTC).date()
                 ) -> None:
        self.directory = directory
        self._today = today
        self.retention_days = retention_days
        self._fsync = fsync
        self._day = ""
        self._file: IO[bytes] | None = None
        self._dirty = False
        self.windows = 0

    @property
    def path(self) -> Path:
        """The day file being written (the directory before the first)."""
        return self.directory / f"{self._day}.jsonl" if self._day else self.directory

    def write(self, batch: Batch) -> None:
        lines: list[bytes] = []
        for record in batch.history:
            day = record.start[:10]
            if day != self._day:
                self._put(lines)
                self._open(day)
            lines.append(_ENCODER.encode(record) + b"\n")
            self.windows += 1
        self._put(lines)

    def _put(self, lines: list[bytes]) -> None:
        """Append whole lines in one write, so a reader sees whole lines or none."""
        if lines and self._file is not None:
            self._file.write(b"".join(lines))
            self._file.flush()
            self._dirty = True
            lines.clear()

    def _open(self, day: str) -> None:
        if self._file is not None:
            self._sync()
            self._file.close()
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.directory.is_symlink():  # swapped for a link since the run started
            raise link_refused(self.directory)
        self._file = open_output(self.directory / f"{day}.jsonl", append=True)
        self._day = day
        self._prune(dt.date.fromisoformat(day))

    def _prune(self, newest: dt.date) -> None:
        # a window dated in the future (a producer's clock years ahead) must not age out the
        # real history: count back from the newest day no later than today
        newest = min(newest, self._today())
        cutoff = newest - dt.timedelta(days=self.retention_days)
        for day, path in history_days(self.directory):
            if day < cutoff:
                path.unlink(missing_ok=True)

    def _sync(self) -> None:
        if self._dirty and self._fsync and self._file is not None:
            os.fsync(self._file.fileno())
        self._dirty = False

    def durable(self) -> None:
        self._sync()

    def close(self) -> None:
        if self._file is not None:
            self._sync()
            self._file.close()
            self._file = None


def history_days(directory: Path) -> list[tuple[dt.date, Path]]:
    """The day files in a history directory, oldest first."""
    if not directory.is_dir():
        return []
    out = []
    for path in directory.iterdir():
        match = _DAY_FILE.match(path.name)
        if match and path.is_file():
            try:
                out.append((dt.date.fromisoformat(match.group(1)), path))
            except ValueError:
                continue
    return sorted(out)


def read_history(directory: Path, first: dt.date, last: dt.date) -> tuple[
        list[HistoryRecord], int]:
    """Every window in the day files from ``first`` to ``last`` (inclusive), and the number of
    lines that are not what the sink writes (skipped). A last line without its newline is
    being written, or was cut short by a crash: it is skipped and not counted."""
    records: list[HistoryRecord] = []
    bad = 0
    for day, path in history_days(directory):
        if not first <= day <= last:
            continue
        with path.open("rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    continue  # the last line, still being written (or cut short by a crash)
                try:
                    record = _DECODER.decode(line)
                except msgspec.DecodeError:
                    bad += 1
                    continue
                if _valid(record):
                    records.append(record)
                else:
                    bad += 1
    return records, bad


def _valid(record: HistoryRecord) -> bool:
    """Times that parse (a window of at most a day), counts that are not negative, sums that
    are finite, wait buckets in range: a line that is not what the sink writes is counted, not
    used."""
    try:
        start = dt.datetime.fromisoformat(record.start)
        end = dt.datetime.fromisoformat(record.end)
        if start.tzinfo is None or end.tzinfo is None or not (
                dt.timedelta(0) < end - start <= dt.timedelta(days=1)):
            return False
        if not 1970 <= start.astimezone(dt.UTC).year <= 9998:
            return False
    except (TypeError, ValueError, OverflowError):
        return False
    if any(value < 0 for value in record.counts.values()):
        return False
    if isinstance(record, GroupWindow):
        if not all(math.isfinite(value) for value in record.sums.values()):
            return False
        for bucket, value in record.waits.items():
            if not (bucket.isascii() and bucket.isdecimal() and int(bucket) < WAIT_BUCKETS
                    and value >= 0):
                return False
        return True
    if record.overrides_other < 0 or any(v < 0 for v in record.rejected_by_reason.values()):
        return False
    for seen in record.overrides:
        if seen.placements < 0:
            return False
        if seen.latest_expiry is not None:
            try:
                moment = dt.datetime.fromisoformat(seen.latest_expiry)
                if moment.tzinfo is None:
                    return False
                moment.timestamp()
            except (TypeError, ValueError, OverflowError):
                return False
    return True
