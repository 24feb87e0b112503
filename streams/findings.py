"""Findings: every alert as a case someone owns, from detection to remediation.

Each firing edge opens a finding in ``findings.sqlite`` beside the audit store; its resolved
edge closes it ("by the detector"). A person can acknowledge a finding and resolve it with a
note (``placewatch findings ack | resolve``) while the service runs: SQLite in WAL mode lets
the command and the service write the same file. *Remediation age* is the time from
detection to resolution:

- resolved by the detector: the difference of the two edges' event times (the ``at`` of
  ``alerts.jsonl``), so a replay gives the same ages as the live run;
- resolved by a person first: wall-clock time of the resolution minus the wall-clock time the
  finding was recorded (in production event time and wall-clock time agree to seconds; in the
  simulator's fast-forwarded demo they do not, and the detector's figure is the one to read).

A finding resolved by a person stays resolved by that person; the detector's later
resolution is recorded beside it (``detector_resolved_at``). A finding a restarted ``run``
closed (its detectors start afresh) is ``resolved_by = 'restart'`` with no remediation age:
a restart is not a remediation. Ages feed the
``placewatch_remediation_age_seconds`` histogram.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from streams.errors import OutputError, PlacewatchError, cause
from streams.sinks.base import Batch

__all__ = ["REMEDIATION_BUCKETS", "Finding", "FindingFigures", "FindingsSink", "FindingsStore",
           "figures", "read_findings"]

REMEDIATION_BUCKETS: Final = (600.0, 1800.0, 3600.0, 4 * 3600.0, 8 * 3600.0, 86400.0,
                              3 * 86400.0, 7 * 86400.0, 30 * 86400.0)
"""Histogram bounds of remediation age (seconds): 10 min, 30 min, 1 h, 4 h, 8 h, 1 d, 3 d,
1 week, 30 days."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS findings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL,
    alert TEXT NOT NULL,
    kind TEXT NOT NULL,
    attribute TEXT,
    grp TEXT,
    metric TEXT NOT NULL,
    severity TEXT NOT NULL,
    summary TEXT NOT NULL,
    detected_at TEXT NOT NULL,
    detected_event_index INTEGER NOT NULL,
    detected_decision_id TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    acknowledged_at REAL,
    acknowledged_by TEXT,
    ack_note TEXT,
    resolved_at TEXT,
    resolved_by TEXT,
    resolve_note TEXT,
    detector_resolved_at TEXT,
    remediation_age_s REAL
);
CREATE INDEX IF NOT EXISTS findings_open ON findings (fingerprint, resolved_at);
"""
_COLUMNS: Final = ("id", "fingerprint", "alert", "kind", "attribute", "grp", "metric",
                   "severity", "summary", "detected_at", "detected_event_index",
                   "detected_decision_id", "recorded_at", "acknowledged_at", "acknowledged_by",
                   "ack_note", "resolved_at", "resolved_by", "resolve_note",
                   "detector_resolved_at", "remediation_age_s")


@dataclass(frozen=True, slots=True)
class Finding:
    """One row of the findings store."""

    id: int
    fingerprint: str
    alert: str
    kind: str
    attribute: str | None
    grp: str | None
    metric: str
    severity: str
    summary: str
    detected_at: str
    detected_event_index: int
    detected_decision_id: str
    recorded_at: float
    acknowledged_at: float | None
    acknowledged_by: str | None
    ack_note: str | None
    resolved_at: str | None
    resolved_by: str | None
    resolve_note: str | None
    detector_resolved_at: str | None
    remediation_age_s: float | None

    @property
    def state(self) -> str:
        if self.resolved_at is not None:
            return "resolved"
        return "acknowledged" if self.acknowledged_at is not None else "open"

    def as_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in _COLUMNS}
        out["group"] = out.pop("grp")
        out["state"] = self.state
        return out


def _parse(at: str) -> float:
    return dt.datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FindingsStore:
    """The findings of one run directory (``findings.sqlite``)."""

    def __init__(self, path: Path, create: bool = True, fsync: bool = False) -> None:
        self.path = path
        if not create and not path.is_file():
            raise PlacewatchError(f"no findings store at {path}: it is written by `run` and "
                                  "`replay` into their --out directory")
        try:
            self._db = sqlite3.connect(path, timeout=30, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise PlacewatchError(f"cannot open the findings store {path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    # -- from the pipeline -----------------------------------------------------------------

    def record(self, batch: Batch) -> None:
        """Open a finding for each firing edge, close the open one for each resolved edge."""
        if not batch.alerts:
            return
        now = time.time()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for alert in batch.alerts:
                if alert.state == "firing":
                    self._db.execute(
                        "INSERT INTO findings (fingerprint, alert, kind, attribute, grp, "
                        "metric, severity, summary, detected_at, detected_event_index, "
                        "detected_decision_id, recorded_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (alert.fingerprint, alert.alert, alert.kind, alert.attribute,
                         alert.group, alert.metric, alert.severity, alert.summary, alert.at,
                         alert.event_index, alert.decision_id, now))
                    continue
                row = self._db.execute(
                    "SELECT id, detected_at, resolved_at FROM findings WHERE fingerprint = ? "
                    "AND detector_resolved_at IS NULL ORDER BY id DESC LIMIT 1",
                    (alert.fingerprint,)).fetchone()
                if row is None:
                    continue  # fired before this store existed
                fid, detected_at, resolved_at = row
                if alert.details.get("closed_on_restart") is True:
                    # a restart is not a remediation: closed, with no age
                    self._db.execute(
                        "UPDATE findings SET resolved_at = coalesce(resolved_at, ?), "
                        "resolved_by = coalesce(resolved_by, 'restart'), resolve_note = "
                        "coalesce(resolve_note, ?), detector_resolved_at = ? WHERE id = ?",
                        (alert.at, alert.summary, alert.at, fid))
                elif resolved_at is None:
                    age = max(_parse(alert.at) - _parse(detected_at), 0.0)
                    self._db.execute(
                        "UPDATE findings SET resolved_at = ?, resolved_by = 'detector', "
                        "resolve_note = ?, detector_resolved_at = ?, remediation_age_s = ? "
                        "WHERE id = ?", (alert.at, alert.summary, alert.at, age, fid))
                else:
                    self._db.execute("UPDATE findings SET detector_resolved_at = ? WHERE id = ?",
                                     (alert.at, fid))
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise OutputError(f"cannot write the findings store {self.path}: {cause(exc)}"
                              ) from exc

    # -- for people ------------------------------------------------------------------------

    def get(self, finding_id: int) -> Finding:
        row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM findings WHERE id = ?",
                               (finding_id,)).fetchone()
        if row is None:
            raise PlacewatchError(f"no finding {finding_id} in {self.path}")
        return Finding(*row)

    def list(self, state: str | None = None) -> list[Finding]:
        """Findings, newest first; ``state``: open (not resolved), resolved, or all (None)."""
        where = {"open": "WHERE resolved_at IS NULL", "resolved": "WHERE resolved_at IS NOT "
                 "NULL", None: ""}[state]
        rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM findings {where} "
                                "ORDER BY id DESC").fetchall()
        return [Finding(*row) for row in rows]

    def acknowledge(self, finding_id: int, by: str, note: str | None) -> Finding:
        finding = self.get(finding_id)
        if finding.resolved_at is not None:
            raise PlacewatchError(f"finding {finding_id} is already resolved "
                                  f"({finding.resolved_by}, {finding.resolved_at})")
        with closing(self._db.cursor()) as cur:
            cur.execute("UPDATE findings SET acknowledged_at = ?, acknowledged_by = ?, "
                        "ack_note = ? WHERE id = ? AND resolved_at IS NULL",
                        (time.time(), by, note, finding_id))
            if cur.rowcount == 0:
                raise PlacewatchError(f"finding {finding_id} was resolved meanwhile: "
                                      f"{self.get(finding_id).resolved_by}")
        return self.get(finding_id)

    def resolve(self, finding_id: int, by: str, note: str) -> Finding:
        finding = self.get(finding_id)
        if finding.resolved_at is not None:
            raise PlacewatchError(f"finding {finding_id} is already resolved "
                                  f"({finding.resolved_by}, {finding.resolved_at})")
        now = time.time()
        with closing(self._db.cursor()) as cur:
            cur.execute("UPDATE findings SET resolved_at = ?, resolved_by = ?, "
                        "resolve_note = ?, remediation_age_s = ? WHERE id = ? AND "
                        "resolved_at IS NULL",
                        (_now_iso(), f"person:{by}", note,
                         max(now - finding.recorded_at, 0.0), finding_id))
            if cur.rowcount == 0:
                raise PlacewatchError(f"finding {finding_id} was resolved meanwhile: "
                                      f"{self.get(finding_id).resolved_by}")
        return self.get(finding_id)



def read_findings(path: Path) -> list[Finding]:
    """Every finding, oldest first, read without writing (a report beside a running service)."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
            rows = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM findings ORDER BY id"
                              ).fetchall()
    except sqlite3.Error as exc:
        raise PlacewatchError(f"cannot read the findings store {path}: {exc}") from exc
    return [Finding(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class FindingFigures:
    """What the metrics say about findings (read at scrape time)."""

    remediation: list[tuple[str, float]]
    """(kind, remediation age in seconds) of every resolved finding."""
    unresolved: dict[tuple[str, str], int]
    """(kind, open | acknowledged) -> findings not resolved yet."""


def figures(path: Path) -> FindingFigures | None:
    """Read the figures on a connection of their own (the scrape thread's); None when the
    store does not exist or cannot be read."""
    if not path.is_file():
        return None
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
            ages = [(str(kind), float(age)) for kind, age in db.execute(
                "SELECT kind, remediation_age_s FROM findings WHERE remediation_age_s IS NOT "
                "NULL ORDER BY id")]
            rows = db.execute(
                "SELECT kind, CASE WHEN acknowledged_at IS NULL THEN 'open' ELSE "
                "'acknowledged' END, count(*) FROM findings WHERE resolved_at IS NULL "
                "GROUP BY 1, 2").fetchall()
    except sqlite3.Error:
        return None
    return FindingFigures(ages, {(str(k), str(s)): int(n) for k, s, n in rows})


class FindingsSink:
    """The pipeline's side of the store: each batch's alert edges, committed in ``write``."""

    name = "findings.sqlite"

    def __init__(self, path: Path, fsync: bool = False) -> None:
        self.store = FindingsStore(path, fsync=fsync)

    def write(self, batch: Batch) -> None:
        self.store.record(batch)

    def durable(self) -> None:
        return None

    def close(self) -> None:
        self.store.close()
