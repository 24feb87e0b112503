"""File sinks: alerts and dead letters as JSON lines (``alerts.jsonl``, ``dead_letter.jsonl``).

Each flushes after every batch; with ``fsync`` its :meth:`durable` also forces the file to
disk, so a live run's acknowledged batches survive a crash of the machine, not only of the
process. A replay can always be run again from its input and does not pay for it.
"""

from __future__ import annotations

import abc
import base64
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import IO

import msgspec
import orjson

from detectors.alerts import Alert
from detectors.events import OversizedLine
from detectors.pipeline import DeadLetter
from streams.errors import PlacewatchError
from streams.sinks.base import Batch

__all__ = ["TEMP_SUFFIX", "AlertsFile", "DeadLettersFile", "JsonLinesFile", "alert_line",
           "dead_letter_line", "link_refused", "open_output", "remove_stale_temporaries",
           "write_atomically"]

_ALERT_ENCODER = msgspec.json.Encoder()


def alert_line(alert: Alert) -> bytes:
    """One ``alerts.jsonl`` line (field order fixed by :class:`Alert`)."""
    return _ALERT_ENCODER.encode(alert) + b"\n"


def dead_letter_line(letter: DeadLetter, source: str) -> bytes:
    """One ``dead_letter.jsonl`` line: reason, where it came from, and the original bytes.

    The bytes are kept as text in ``raw`` when they are valid UTF-8, else base64 in
    ``raw_base64``: either way the original input can be restored exactly, except for a line
    over the event limit, of which only the head is kept (with its length and SHA-256).
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


def _file_mode() -> int:
    """``0o666`` less the process's umask: what ``open()`` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def link_refused(path: Path) -> PlacewatchError:
    """The error for a symbolic link where placewatch writes."""
    return PlacewatchError(f"{path} is a symbolic link: placewatch does not follow links in "
                           "its data directory (it would write wherever the link points); "
                           "remove it")


def open_output(path: Path, append: bool) -> IO[bytes]:
    """Open an output file for writing without following a symbolic link planted in its
    place: a :class:`~streams.errors.PlacewatchError` naming it, instead of writing wherever
    the link points."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    flags |= os.O_APPEND if append else os.O_TRUNC
    try:
        return os.fdopen(os.open(path, flags, 0o666), "ab" if append else "wb")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise link_refused(path) from exc
        raise PlacewatchError(f"cannot write {path}: {exc.strerror or exc}") from exc


TEMP_SUFFIX = ".placewatch-tmp"
"""Ends the name of a file :func:`write_atomically` has not renamed into place yet."""


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step (a temporary file of a random name beside it,
    flushed to disk, renamed over it, the directory flushed too): a reader sees the old file or
    the new one, never half of one, and a symbolic link at ``path`` is replaced, not followed.
    The new file keeps the old one's permissions (or gets the umask's)."""
    try:
        mode = stat.S_IMODE(os.lstat(path).st_mode) if path.is_file() else _file_mode()
    except OSError:
        mode = _file_mode()
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(directory: Path) -> int:
    """Delete temporary files a crashed writer left in ``directory`` (call under its lock)."""
    removed = 0
    for leftover in directory.glob(f".*{TEMP_SUFFIX}"):
        if leftover.is_file() or leftover.is_symlink():
            leftover.unlink()
            removed += 1
    return removed


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
