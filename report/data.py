"""What a report reads from a run directory (I/O only; the figures are in :mod:`report.model`).

Everything is read-only, so a report can be written while the service runs: the history day
files, ``alerts.jsonl``, the findings store, the week's deep-audit records and the chain's
verification, and ``summary.json`` when a finished run left one.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from detectors.alerts import Alert
from detectors.history import HistoryRecord
from report.week import Week
from streams.audit.store import CONTROL_IDS
from streams.audit.verify import VerifyResult, verify_store
from streams.errors import AuditStoreError, PlacewatchError
from streams.findings import Finding, read_findings
from streams.sinks.history import HISTORY_DIR, history_days, read_history

__all__ = ["RunData", "load"]


@dataclass(slots=True)
class RunData:
    """The inputs of one week's report."""

    directory: Path
    history: list[HistoryRecord]
    """Windows of this week and the one before (plus a day either side for time zones)."""
    history_bad_lines: int
    history_first_day: dt.date | None
    """The oldest day any history file holds (None: no history at all)."""
    alerts: list[Alert]
    alerts_bad_lines: int
    findings: list[Finding]
    findings_error: str
    audits: list[dict[str, Any]]
    """Deep-audit record bodies decided in the week (emptied bodies are left out)."""
    audits_emptied: int
    chain: VerifyResult | None
    chain_error: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


def _parse_at(text: str) -> dt.datetime | None:
    """An RFC 3339 time the report can show (its UTC year within 1970 to 9998), else None."""
    try:
        moment = dt.datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        if not 1970 <= moment.astimezone(dt.UTC).year <= 9998:
            return None
    except (TypeError, ValueError, OverflowError):
        return None
    return moment


def _alerts(path: Path) -> tuple[list[Alert], int]:
    """Alert edges, and the lines that are not one (unreadable, or with a time that does not
    parse): skipped and counted."""
    if not path.is_file():
        return [], 0
    out = []
    bad = 0
    with path.open("rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                continue  # being written
            try:
                alert = msgspec.json.decode(line, type=Alert)
            except msgspec.DecodeError:
                bad += 1
                continue
            if _parse_at(alert.at) is None or alert.state not in ("firing", "resolved"):
                bad += 1
                continue
            out.append(alert)
    return out, bad


def _usable(path: Path) -> bool:
    """A store file to read: present and not empty (an empty file is an uncreated store)."""
    return path.is_file() and path.stat().st_size > 0


def _audits(path: Path, week: Week) -> tuple[list[dict[str, Any]], int]:
    """Bodies of the records decided in ``week`` (by their decided_at, in any zone)."""
    if not _usable(path):
        return [], 0
    lo = (week.start.astimezone(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
    hi = (week.end.astimezone(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    start, end = week.start, week.end
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT decision_id, decided_at, body FROM records WHERE substr(decided_at, 1, 10) "
            "BETWEEN ? AND ? ORDER BY rowid", (lo, hi)).fetchall()
    except sqlite3.Error as exc:
        raise PlacewatchError(f"cannot read the audit store {path}: {exc}") from exc
    finally:
        db.close()
    out: list[dict[str, Any]] = []
    emptied = 0
    for decision_id, decided_at, body in rows:
        if decision_id in CONTROL_IDS:
            continue  # control records (checkpoints, holds, purges)
        moment = _parse_at(decided_at)
        if moment is None or not start <= moment < end:
            continue
        if body is None:
            emptied += 1
            continue
        try:
            record = json.loads(body)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out, emptied


def load(directory: Path, week: Week) -> RunData:
    """Read what ``week``'s report needs from a run directory."""
    if not directory.is_dir():
        raise PlacewatchError(f"no run directory at {directory} (the --out of replay or run)")
    history_dir = directory / HISTORY_DIR
    previous = week.previous()
    first = previous.start.astimezone(dt.UTC).date() - dt.timedelta(days=1)
    last = week.end.astimezone(dt.UTC).date() + dt.timedelta(days=1)
    history, bad = read_history(history_dir, first, last)
    days = history_days(history_dir)
    alerts, alerts_bad = _alerts(directory / "alerts.jsonl")
    findings_path = directory / "findings.sqlite"
    findings: list[Finding] = []
    findings_error = ""
    if _usable(findings_path):
        try:
            findings = read_findings(findings_path)
        except PlacewatchError as exc:
            findings_error = str(exc)
    audit_path = directory / "audit.sqlite"
    audits: list[dict[str, Any]] = []
    emptied = 0
    chain: VerifyResult | None = None
    chain_error = ""
    if _usable(audit_path):
        try:
            audits, emptied = _audits(audit_path, week)
            chain = verify_store(audit_path)
        except (AuditStoreError, PlacewatchError) as exc:
            chain_error = str(exc)
    summary: dict[str, Any] = {}
    summary_path = directory / "summary.json"
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text())
        except ValueError:
            summary = {}
    return RunData(directory, history, bad, days[0][0] if days else None, alerts, alerts_bad,
                   findings, findings_error, audits, emptied, chain, chain_error, summary)
