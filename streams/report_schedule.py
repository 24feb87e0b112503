"""A live run writes the weekly report itself: every Monday at ``report_time`` in
``report_timezone``, the report of the week just ended, into ``DIR/reports/WEEK/``.

It is idempotent: a week whose ``report.pdf`` exists is never written again (the files are
replaced atomically, so a report cut short by a crash is written again in full). A service
that was down at the hour writes the missed report when it comes back (the latest week whose
report time has passed; older missed weeks are not written by the service: use
``placewatch report --week``; a week with no history at all is skipped). It waits for the
stream: the report is written once the core's watermark has passed the week's end and
``outcome_settle_s``, or six hours after a check first found it behind. The
report runs in a child process (``placewatch report``): rendering a PDF never holds up the
event path, and a failure is logged and retried with backoff, never fatal.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final

from report.week import Week, zone
from streams.logs import log_event
from streams.settings import Settings
from streams.sinks.history import HISTORY_DIR, history_days

__all__ = ["CHECK_EVERY_S", "ReportSchedule", "due_week"]

_LOG = logging.getLogger("placewatch.report")

CHECK_EVERY_S: Final = 60.0
"""Seconds between two looks at the clock."""
REPORT_TIMEOUT_S: Final = 1800.0
MAX_BACKOFF_S: Final = 6 * 3600.0
"""Longest wait between two attempts at a report that keeps failing."""
WAIT_FOR_STREAM_S: Final = 6 * 3600.0
"""How long after the report time a report waits for the stream to pass the week's end."""
REPORTS_DIR: Final = "reports"


def due_week(now: dt.datetime, tz: str, at: str) -> Week:
    """The latest week whose report time (Monday ``at`` local, after it ended) has passed.

    >>> due_week(dt.datetime(2026, 11, 23, 5, 59, tzinfo=dt.UTC), "UTC", "06:00").label
    '2026-W46'
    >>> due_week(dt.datetime(2026, 11, 23, 6, 0, tzinfo=dt.UTC), "UTC", "06:00").label
    '2026-W47'
    """
    hour, minute = (int(part) for part in at.split(":"))
    this = Week.containing(now, tz)
    time_this_week = this.start.replace(hour=hour, minute=minute)
    # a wall-clock time inside a DST gap or fold: the zone's normalisation decides
    time_this_week = time_this_week.astimezone(zone(tz))
    previous = this.previous()
    return previous if now >= time_this_week else previous.previous()


class ReportSchedule:
    """Checks the clock every minute in a thread of its own; writes the due report once."""

    def __init__(self, settings: Settings, data_dir: Path,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 check_every_s: float = CHECK_EVERY_S,
                 watermark: Callable[[], float] | None = None) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.clock = clock
        self.check_every_s = check_every_s
        self.watermark = watermark
        """The core's event-time watermark (None: do not wait for the stream)."""
        self._waiting_since: dict[str, dt.datetime] = {}
        """Per week: when a check first found the stream behind its end."""
        self._failed: dict[str, tuple[int, dt.datetime]] = {}
        """Per week: failures so far and when the next attempt may start."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._child: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def start(self) -> ReportSchedule:
        if self.settings.report_time:
            self._thread = threading.Thread(target=self._loop, name="placewatch-report",
                                            daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop checking; a report being written is stopped too (it is written again, whole,
        by the next run: its files are replaced atomically)."""
        self._stop.set()
        with self._lock:
            child = self._child
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception as exc:  # a failed report must never stop the service
                if self._stop.is_set():
                    return  # stopped by close(): not a failure
                log_event(_LOG, logging.ERROR, "weekly report failed", error=str(exc))
            self._stop.wait(self.check_every_s)

    def _ready(self, week: Week, now: dt.datetime) -> bool:
        """Has the stream passed the week's end (and outcomes settled)? A stream that stays
        behind is waited for WAIT_FOR_STREAM_S from the first check that found it behind
        (not from the report time: a service started late reads its backlog first), then
        reported as it is."""
        if self.watermark is None:
            return True
        settle = self.settings.core.outcome_settle_s
        if self.watermark() >= week.end.timestamp() + settle:
            self._waiting_since.pop(week.label, None)
            return True
        since = self._waiting_since.setdefault(week.label, now)
        if (now - since).total_seconds() < WAIT_FOR_STREAM_S:
            return False
        log_event(_LOG, logging.WARNING, "writing the weekly report before the stream has "
                  "passed the week's end", week=week.label, waited_s=WAIT_FOR_STREAM_S)
        return True

    def check(self) -> str | None:
        """Write the due week's report if it is missing and may be written now; the week
        written, else None. A failure is retried with backoff (1 min, doubling, at most 6 h)."""
        s = self.settings
        now = self.clock()
        week = due_week(now, s.report_timezone, s.report_time)
        out = self.data_dir / REPORTS_DIR / week.label
        if (out / "report.pdf").is_file():
            return None
        first = week.start.astimezone(dt.UTC).date()
        last = (week.end - dt.timedelta(microseconds=1)).astimezone(dt.UTC).date()
        if not any(first <= day <= last and path.stat().st_size > 0
                   for day, path in history_days(self.data_dir / HISTORY_DIR)):
            return None  # the service saw nothing of that week: nothing to report
        failed = self._failed.get(week.label)
        if failed is not None and now < failed[1]:
            return None
        if not self._ready(week, now):
            return None
        command = [sys.executable, "-m", "streams.cli", "--quiet", "report", "--week",
                   week.label, "--data", str(self.data_dir), "--out", str(out)]
        if s.config_file:
            command += ["--config", s.config_file]
        log_event(_LOG, logging.INFO, "writing the weekly report", week=week.label,
                  out=str(out))
        try:
            self._run(command)
        except Exception:
            count = (failed[0] if failed else 0) + 1
            delay = min(CHECK_EVERY_S * 2 ** (count - 1), MAX_BACKOFF_S)
            self._failed[week.label] = (count, now + dt.timedelta(seconds=delay))
            raise
        self._failed.pop(week.label, None)
        log_event(_LOG, logging.INFO, "weekly report written", week=week.label,
                  pdf=str(out / "report.pdf"))
        return week.label

    def _run(self, command: list[str]) -> None:
        with self._lock:
            if self._stop.is_set():
                raise RuntimeError("stopping")
            child = self._child = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env=dict(os.environ))
        try:
            _, err = child.communicate(timeout=REPORT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            raise RuntimeError(f"{' '.join(command[3:6])}: no report after "
                               f"{REPORT_TIMEOUT_S:.0f} s") from None
        finally:
            with self._lock:
                self._child = None
        if child.returncode != 0:
            lines = (err.strip() or f"exit status {child.returncode}").splitlines()
            raise RuntimeError(f"placewatch report --week {command[6]}: {lines[-1]}")
