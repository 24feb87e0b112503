"""A run's output directory: the sinks that write into it, and its closing files.

``replay`` starts a directory afresh; a live ``run`` resumes one (appends to its alert and
dead-letter files and continues its audit chain). An audit store that already holds records
is never deleted: they are kept for ``audit_retention_days``, perhaps under legal hold.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec

from detectors.alerts import Alert
from streams.errors import PlacewatchError
from streams.findings import FindingsSink
from streams.sinks.audit_store import AuditStoreSink
from streams.sinks.base import Sink
from streams.sinks.files import AlertsFile, DeadLettersFile
from streams.sinks.history import HISTORY_DIR, HistoryFiles, history_days

__all__ = ["OUTPUT_FILES", "RunDirectory"]

OUTPUT_FILES = ("alerts.jsonl", "summary.json", "dead_letter.jsonl", "metrics.prom",
                "audit.sqlite", "audit.sqlite-wal", "audit.sqlite-shm", "findings.sqlite",
                "findings.sqlite-wal", "findings.sqlite-shm")


class RunDirectory:
    """The files of one run directory, as sinks, plus the summary and metrics written at
    the end."""

    def __init__(self, directory: Path, alerts: AlertsFile, dead_letters: DeadLettersFile,
                 store: AuditStoreSink, findings: FindingsSink, history: HistoryFiles,
                 left_open: list[Alert] | None = None) -> None:
        self.directory = directory
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
             history_retention_days: int = 400) -> RunDirectory:
        """Open a run directory. ``resume`` (a live service restarting) continues its audit
        chain and appends to its alert, dead-letter and history files; otherwise (a replay)
        they are started afresh, but an audit store that already holds records is never deleted.
        ``fsync`` makes every sink's ``durable()`` mean on disk, surviving a machine crash."""
        store = directory / "audit.sqlite"
        try:
            directory.mkdir(parents=True, exist_ok=True)
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
            if not resume:
                for name in OUTPUT_FILES:
                    (directory / name).unlink(missing_ok=True)
                for _, path in history_days(directory / HISTORY_DIR):
                    path.unlink()
        except OSError as exc:
            raise PlacewatchError(f"cannot use output directory {directory}: {exc}") from exc
        left_open = _left_open(directory / "alerts.jsonl") if resume else []
        return cls(directory,
                   AlertsFile(directory / "alerts.jsonl", append=resume, fsync=fsync),
                   DeadLettersFile(directory / "dead_letter.jsonl", append=resume, fsync=fsync),
                   AuditStoreSink(store, fsync=fsync),
                   FindingsSink(directory / "findings.sqlite", fsync=fsync),
                   HistoryFiles(directory / HISTORY_DIR, history_retention_days, fsync=fsync),
                   left_open)

    def write_final(self, summary: bytes, metrics: bytes) -> None:
        """``summary.json`` and ``metrics.prom``, written once the last batch is safe."""
        (self.directory / "summary.json").write_bytes(summary)
        (self.directory / "metrics.prom").write_bytes(metrics)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


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
