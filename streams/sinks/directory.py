"""A run's output directory: the sinks that write into it, and its closing files.

``replay`` starts a directory afresh; a live ``run`` resumes one (appends to its alert and
dead-letter files and continues its audit chain). An audit store that already holds records
is never deleted: they are kept for ``audit_retention_days``, perhaps under legal hold.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec
import orjson

from detectors.alerts import Alert
from streams.audit.signing import Signer, load_verifier, read_witness
from streams.audit.store import CheckpointPublisher, published_head
from streams.audit.verify import verify_store
from streams.errors import OutputError, PlacewatchError, cause
from streams.findings import FindingsSink
from streams.logs import log_event
from streams.sinks.audit_store import AuditStoreSink
from streams.sinks.base import Sink
from streams.sinks.files import (
    AlertsFile,
    DeadLettersFile,
    link_refused,
    remove_stale_temporaries,
    write_atomically,
)
from streams.sinks.history import HISTORY_DIR, HistoryFiles, history_days

__all__ = ["LOCK_FILE", "OUTPUT_FILES", "DirectoryLock", "RunDirectory"]

LOCK_FILE = ".placewatch.lock"
"""Held (an advisory ``flock``) by the one run or replay writing a directory."""

OUTPUT_FILES = ("alerts.jsonl", "summary.json", "dead_letter.jsonl", "metrics.prom",
                "audit.sqlite", "audit.sqlite-wal", "audit.sqlite-shm", "findings.sqlite",
                "findings.sqlite-wal", "findings.sqlite-shm")


class DirectoryLock:
    """One owner per data directory: an exclusive ``flock`` on :data:`LOCK_FILE`, held until
    :meth:`release` (or the process ends, however it ends: the kernel drops it)."""

    def __init__(self, directory: Path) -> None:
        path = directory / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:  # a link, a directory, no permission
            raise PlacewatchError(f"cannot open the lock {path}: {exc.strerror or exc}"
                                  ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise PlacewatchError(
                f"{directory} is in use by another placewatch ({holder}): one run or replay "
                "writes a directory at a time; stop it, or choose another --out") from None
        except OSError as exc:  # a filesystem without flock (ENOLCK, EOPNOTSUPP)
            os.close(fd)
            raise PlacewatchError(
                f"cannot lock {path}: {exc.strerror or exc}; placewatch needs a filesystem "
                "with flock for its data directory (a local disk, not every network mount)"
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _no_links(directory: Path) -> None:
    """Refuse a data directory holding a symbolic link where placewatch writes (its files,
    ``history/`` and ``reports/`` and what they hold)."""
    places = [directory / name for name in (*OUTPUT_FILES, HISTORY_DIR, "alert_outbox.sqlite",
                                            "reports")]
    for folder in (directory / HISTORY_DIR, directory / "reports"):
        if folder.is_dir() and not folder.is_symlink():
            places += folder.rglob("*")
    for place in places:
        if place.is_symlink():
            raise link_refused(place)


class RunDirectory:
    """The files of one run directory, as sinks, plus the summary and metrics written at
    the end. Opening it takes the directory's lock (:class:`DirectoryLock`)."""

    def __init__(self, directory: Path, alerts: AlertsFile, dead_letters: DeadLettersFile,
                 store: AuditStoreSink, findings: FindingsSink, history: HistoryFiles,
                 left_open: list[Alert] | None = None,
                 lock: DirectoryLock | None = None) -> None:
        self.directory = directory
        self.lock = lock
        self.alerts = alerts
        self.dead_letters = dead_letters
        self.store = store
        self.findings = findings
        self.history = history
        self.left_open = left_open or []
        """Alerts an earlier run left open in ``alerts.jsonl`` (firing, never resolved)."""

    @property
    def sinks(self) -> list[Sink]:
        return [self.dead_letters, self.alerts, self.store, self.findings, self.history]

    @classmethod
    def open(cls, directory: Path, resume: bool, fsync: bool = False,
             history_retention_days: int = 400, signer: Signer | None = None,
             witness: Path | None = None, publishers: Sequence[CheckpointPublisher] = ()
             ) -> RunDirectory:
        """Open a run directory. ``resume`` (a live service restarting) continues its audit
        chain and appends to its alert, dead-letter and history files; otherwise (a replay)
        they are started afresh, but an audit store that already holds records is never deleted.
        ``fsync`` makes every sink's ``durable()`` mean on disk, surviving a machine crash;
        ``signer`` and ``witness`` sign the audit store's checkpoints and publish them
        (:mod:`streams.audit.signing`); ``publishers`` get every checkpoint too."""
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PlacewatchError(f"cannot use output directory {directory}: {cause(exc)}"
                                  ) from exc
        lock = DirectoryLock(directory)  # its errors name their cause
        try:
            return cls._open(directory, resume, fsync, history_retention_days, lock, signer,
                             witness, publishers)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _open(cls, directory: Path, resume: bool, fsync: bool, history_retention_days: int,
              lock: DirectoryLock, signer: Signer | None, witness: Path | None,
              publishers: Sequence[CheckpointPublisher]) -> RunDirectory:
        store = directory / "audit.sqlite"
        try:
            _no_links(directory)
            remove_stale_temporaries(directory)  # a crashed writer's, under the lock
            held = _records_in(store)
            worked = _people_in(directory / "findings.sqlite") if not resume else 0
            if worked:
                raise PlacewatchError(
                    f"{directory / 'findings.sqlite'} holds {worked} findings people "
                    "acknowledged or resolved: replay into another --out, or move it away "
                    "first")
            if held and not resume:
                raise PlacewatchError(
                    f"{store} already holds {held} audit records (kept for "
                    "audit_retention_days, perhaps under legal hold): replay into another "
                    "--out, or move the store away first")
            if resume and held:
                _reconcile(directory, store, signer, witness)
            if not resume:
                for name in OUTPUT_FILES:
                    (directory / name).unlink(missing_ok=True)
                for _, path in history_days(directory / HISTORY_DIR):
                    path.unlink()
        except OSError as exc:
            raise PlacewatchError(f"cannot use output directory {directory}: {cause(exc)}"
                                  ) from exc
        left_open = _left_open(directory / "alerts.jsonl") if resume else []
        return cls(directory,
                   AlertsFile(directory / "alerts.jsonl", append=resume, fsync=fsync),
                   DeadLettersFile(directory / "dead_letter.jsonl", append=resume, fsync=fsync),
                   AuditStoreSink(store, fsync=fsync, signer=signer, witness=witness,
                                  publishers=publishers),
                   FindingsSink(directory / "findings.sqlite", fsync=fsync),
                   HistoryFiles(directory / HISTORY_DIR, history_retention_days, fsync=fsync),
                   left_open, lock)

    def write_final(self, summary: bytes, metrics: bytes) -> None:
        """``summary.json`` and ``metrics.prom``, written once the last batch is safe, each
        replaced in one step (a crash leaves the old file or the new one)."""
        try:
            write_atomically(self.directory / "summary.json", summary)
            write_atomically(self.directory / "metrics.prom", metrics)
        except OSError as exc:
            raise OutputError(f"cannot write {exc.filename or self.directory}: {cause(exc)}"
                              ) from exc

    def release(self) -> None:
        """Give up the directory's lock (the run or replay is over)."""
        if self.lock is not None:
            self.lock.release()

    def close(self) -> None:
        try:
            for sink in self.sinks:
                sink.close()
        finally:
            self.release()


_LOG = logging.getLogger("placewatch")


def _reconcile(directory: Path, store: Path, signer: Signer | None = None,
               witness: Path | None = None) -> None:
    """A resumed start: the head ``summary.json`` published must be where the store's chain
    stands, or behind it on the same chain. Behind it means records were written after the
    last summary by a run that stopped without writing one (a crash, a kill): the current
    head is published now, so ``audit verify`` does not report the untampered store as
    TAMPERED. A chain that is broken, or does not pass through the published head, is not
    appended to."""
    published = published_head(store)
    if published is None:
        return
    records, head = published
    verifier = None if signer is None else load_verifier(signer.public_key)
    witnessed = (read_witness(witness, "audit_witness_path")
                 if witness is not None and witness.is_file() else None)
    # under the key and the witness: a forged retention record or a rewritten, witnessed
    # stretch is refused; decision records after the last signed checkpoint cannot be told
    # from a crash's and are published (docs/audit.md)
    result = verify_store(store, head, records, verifier, witnessed)
    if result.ok:
        return
    if not result.unpublished:
        raise PlacewatchError(f"{store} does not verify against the head "
                              f"{directory / 'summary.json'} published ({result.problem}); a run "
                              "would append to it. Check it with placewatch audit verify, and "
                              "move it away to start a new store")
    summary_path = directory / "summary.json"
    summary = orjson.loads(summary_path.read_bytes())
    summary["audit_head"] = {"records": result.records, "hash": result.head}
    summary["audit_head_reconciled"] = {
        "published_records": records, "published_hash": head,
        "unpublished_records": result.unpublished,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_atomically(summary_path, orjson.dumps(
        summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    log_event(_LOG, logging.WARNING, "audit store ahead of its published head: a run stopped "
              "without writing its summary; its head is published now", store=str(store),
              published_records=records, records=result.records,
              unpublished=result.unpublished)


def _records_in(store: Path) -> int:
    """Records an existing audit store holds (0 when there is none or it is empty)."""
    if not store.is_file():
        return 0
    try:
        db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT count(*) FROM records").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise PlacewatchError(f"{store} exists but cannot be read as an audit store ({exc}); "
                              "it is left untouched: move it away or choose another --out"
                              ) from exc


def _people_in(findings: Path) -> int:
    """Findings a person acknowledged or resolved (0 when there is no store)."""
    if not findings.is_file():
        return 0
    try:
        db = sqlite3.connect(f"file:{findings}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT count(*) FROM findings WHERE acknowledged_at IS NOT "
                                  "NULL OR resolved_by LIKE 'person:%'").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise PlacewatchError(f"{findings} exists but cannot be read as a findings store "
                              f"({exc}); it is left untouched: move it away or choose another "
                              "--out") from exc


def _left_open(path: Path) -> list[Alert]:
    """Firing edges in an existing ``alerts.jsonl`` with no resolved edge after them.

    Lines without a ``fingerprint`` (written before alerts had edges) cannot be paired and are
    left alone, as are lines that do not parse.
    """
    if not path.is_file():
        return []
    open_now: dict[str, Alert] = {}
    try:
        with path.open("rb") as handle:
            for raw in handle:
                try:
                    alert = msgspec.json.decode(raw, type=Alert)
                except msgspec.DecodeError:  # includes a line of another shape
                    continue
                if alert.state == "firing":
                    open_now[alert.fingerprint] = alert
                else:
                    open_now.pop(alert.fingerprint, None)
    except OSError as exc:
        raise PlacewatchError(f"cannot read {path}: {exc}") from exc
    return list(open_now.values())
