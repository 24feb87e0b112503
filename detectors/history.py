"""History: what each group received, window by window of event time, for the weekly report.

The core's group counters are totals since the run began. A reviewer's question is about a
week ("what changed, for whom, what did it cost"), so the core also cuts the stream into
windows of ``history_window_s`` seconds of event time (an hour by default, aligned to UTC) and,
when the watermark passes a window's end, emits one :class:`GroupWindow` per group that
received anything in it (the difference of its counters since the window began) and one
:class:`StreamWindow` with the stream's own counts. The report sums windows; nothing in them is
an estimate. A run that stops mid-window emits that window's part at the end; a restarted run
emits its own part of the same window, and the parts add up.

>>> from detectors.groups import EquityLedger
>>> ledger = EquityLedger(("team",), (), 8, 8)
>>> history = History(3600)
>>> history.start(7200.5)
>>> stats = ledger.resolve({"team": "a"})[0]
>>> stats.decisions += 3; stats.placed += 2
>>> history.due(10_000.0), history.due(11_000.0)
(False, True)
>>> [(w.start, w.group, w.counts) for w in history.roll(11_000.0, ledger, {}, {})
...  if isinstance(w, GroupWindow)]
[('1970-01-01T02:00:00Z', 'a', {'decisions': 3, 'placed': 2})]
>>> history.window_start
10800.0
"""

from __future__ import annotations

import datetime as dt
import math
import operator
from collections.abc import Mapping
from typing import Final

import msgspec

from detectors.groups import EquityLedger, GroupStats

__all__ = ["GROUP_COUNTS", "GROUP_SUMS", "GroupWindow", "History", "HistoryRecord",
           "OverrideSeen", "StreamWindow", "iso_utc"]

_STAT_COUNTS: Final = (
    "decisions", "placed", "queued", "preempted", "rejected", "tiered", "preferred",
    "hp_tiered", "hp_preferred", "hw_n", "hw_old", "outcomes", "deadline_n", "deadline_missed",
    "wait_n", "cheap_spend_n", "premium_spend_n",
)
_STAT_SUMS: Final = ("wait_sum", "cheap_spend_sum", "premium_spend_sum", "cost_actual_sum",
                     "cost_predicted_sum")
GROUP_COUNTS: Final = (*_STAT_COUNTS, "runtime_res_n", "cost_res_n")
"""Integer counters a window records: those of :class:`~detectors.groups.GroupStats`, then
the forecast residuals counted by the group's runtime and cost watches."""
GROUP_SUMS: Final = (*_STAT_SUMS, "runtime_res_sum", "runtime_res_sq", "cost_res_sum",
                     "cost_res_sq")
"""Float sums a window records: the group's, then its forecast residuals' sums and sums of
squares (``log(actual / predicted)``, from its forecast watches)."""

MAX_OVERRIDES_PER_WINDOW: Final = 50
"""Distinct (by, reason) overrides a window names; more are counted in ``overrides_other``."""

_get_counts = operator.attrgetter(*_STAT_COUNTS)
_get_sums = operator.attrgetter(*_STAT_SUMS)
_NO_FORECAST: Final = ((0, 0), (0.0, 0.0, 0.0, 0.0))


def _forecast_figures(stats: GroupStats) -> tuple[tuple[int, int],
                                                  tuple[float, float, float, float]]:
    watches = stats.forecast
    if watches is None:
        return _NO_FORECAST
    runtime, cost = watches["runtime"], watches["cost"]
    return ((runtime.count, cost.count),
            (runtime.sum, runtime.sq_sum, cost.sum, cost.sq_sum))


def iso_utc(ts: float) -> str:
    """A window boundary as RFC 3339 in UTC, to the second.

    >>> iso_utc(0.0)
    '1970-01-01T00:00:00Z'
    """
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GroupWindow(msgspec.Struct, frozen=True, tag="group", omit_defaults=True):
    """What one group of one attribute received in one window (counters that moved only)."""

    start: str
    end: str
    attribute: str
    group: str
    counts: dict[str, int] = {}
    sums: dict[str, float] = {}
    waits: dict[str, int] = {}
    """Queue waits of its ``place`` decisions by log bucket (:func:`~detectors.groups.wait_bucket`,
    as a string key)."""


class OverrideSeen(msgspec.Struct, frozen=True, omit_defaults=True):
    """Placements under one manual override in a window."""

    by: str
    reason: str
    placements: int
    latest_expiry: str | None = None


class StreamWindow(msgspec.Struct, frozen=True, tag="stream", omit_defaults=True):
    """The stream's own counts in one window: intake, joins, audits, overrides."""

    start: str
    end: str
    counts: dict[str, int] = {}
    rejected_by_reason: dict[str, int] = {}
    overrides: list[OverrideSeen] = []
    overrides_other: int = 0


HistoryRecord = GroupWindow | StreamWindow


class History:
    """Cuts the core's counters into windows of event time (see the module's docstring)."""

    __slots__ = ("_marks", "_overrides", "_overrides_other", "_seen", "_stream", "window_end",
                 "window_s", "window_start")

    def __init__(self, window_s: int) -> None:
        if window_s < 1:
            raise ValueError(f"window_s must be >= 1, got {window_s}")
        self.window_s = window_s
        self.window_start = math.nan
        self.window_end = math.inf
        """Event time at which the open window closes (infinite before the first event)."""
        self._seen: dict[tuple[str, str], tuple[tuple[int, ...], tuple[float, ...], list[int]]] \
            = {}
        self._marks: dict[tuple[str, str], int] = {}
        """Per group: its ``decisions + outcomes`` at the last cut. Every figure a window
        records moves only with a decision or a joined outcome, so a group whose sum has not
        moved is skipped without reading its counters."""
        self._stream: dict[str, int] = {}
        self._overrides: dict[tuple[str, str], tuple[int, float | None]] = {}
        self._overrides_other = 0

    def start(self, ts: float) -> None:
        """Open the first window, the one holding event time ``ts``."""
        self.window_start = float(math.floor(ts / self.window_s) * self.window_s)
        self.window_end = self.window_start + self.window_s

    def due(self, watermark: float) -> bool:
        return watermark >= self.window_end

    def override(self, by: str, reason: str, expires_at: float | None) -> None:
        """A placement under a manual override, in the open window."""
        key = (by, reason)
        held = self._overrides.get(key)
        if held is None:
            if len(self._overrides) >= MAX_OVERRIDES_PER_WINDOW:
                self._overrides_other += 1
                return
            held = (0, None)
        count, latest = held
        if expires_at is not None and (latest is None or expires_at > latest):
            latest = expires_at
        self._overrides[key] = (count + 1, latest)

    def roll(self, watermark: float, ledger: EquityLedger, stream: Mapping[str, int],
             rejected: Mapping[str, int]) -> list[HistoryRecord]:
        """Close the open window and open the one holding ``watermark`` (empty windows
        between them emit nothing). ``stream`` and ``rejected`` are the core's totals."""
        records = self._cut(self.window_end, ledger, stream, rejected)
        self.start(watermark)
        return records

    def flush(self, ledger: EquityLedger, stream: Mapping[str, int],
              rejected: Mapping[str, int]) -> list[HistoryRecord]:
        """The open window's part so far (the end of a run); later events start a new part."""
        if math.isnan(self.window_start):
            return []
        return self._cut(self.window_end, ledger, stream, rejected)

    def _cut(self, end: float, ledger: EquityLedger, stream: Mapping[str, int],
             rejected: Mapping[str, int]) -> list[HistoryRecord]:
        start_text, end_text = iso_utc(self.window_start), iso_utc(end)
        records: list[HistoryRecord] = []
        seen, marks = self._seen, self._marks
        for attribute, table in ledger.groups.items():
            for name, stats in table.items():
                key, mark = (attribute, name), stats.decisions + stats.outcomes
                if marks.get(key) == mark:
                    continue  # nothing moved since the last cut
                marks[key] = mark
                window = self._group_window(seen, attribute, name, stats, start_text, end_text)
                if window is not None:
                    records.append(window)
        before = self._stream
        counts = {key: value - before.get(key, 0) for key, value in stream.items()
                  if value != before.get(key, 0)}
        rejected_now = {key: value - before.get("rejected:" + key, 0)
                        for key, value in sorted(rejected.items())
                        if value != before.get("rejected:" + key, 0)}
        self._stream = {**stream, **{"rejected:" + k: v for k, v in rejected.items()}}
        overrides = [OverrideSeen(by, reason, count, None if latest is None else iso_utc(latest))
                     for (by, reason), (count, latest) in sorted(self._overrides.items())]
        if counts or rejected_now or overrides or self._overrides_other:
            records.append(StreamWindow(start_text, end_text, counts, rejected_now, overrides,
                                        self._overrides_other))
        self._overrides = {}
        self._overrides_other = 0
        return records

    @staticmethod
    def _group_window(seen: dict[tuple[str, str], tuple[tuple[int, ...], tuple[float, ...],
                                                        list[int]]],
                      attribute: str, name: str, stats: GroupStats, start: str, end: str
                      ) -> GroupWindow | None:
        forecast_counts, forecast_sums = _forecast_figures(stats)
        counts_now: tuple[int, ...] = (*_get_counts(stats), *forecast_counts)
        sums_now: tuple[float, ...] = (*_get_sums(stats), *forecast_sums)
        key = (attribute, name)
        held = seen.get(key)
        if held is not None and held[0] == counts_now and held[1] == sums_now:
            return None  # nothing moved (the wait histogram moves only with wait_n)
        waits_now = list(stats.wait_hist)
        if held is None:
            counts_then: tuple[int, ...] = (0,) * len(GROUP_COUNTS)
            sums_then: tuple[float, ...] = (0.0,) * len(GROUP_SUMS)
            waits_then = [0] * len(waits_now)
        else:
            counts_then, sums_then, waits_then = held
        seen[key] = (counts_now, sums_now, waits_now)
        counts = {field: now - then for field, now, then
                  in zip(GROUP_COUNTS, counts_now, counts_then, strict=True) if now != then}
        if not counts:
            return None  # a float sum moved by nothing
        sums = {field: now - then for field, now, then
                in zip(GROUP_SUMS, sums_now, sums_then, strict=True) if now != then}
        waits = {str(bucket): now - then for bucket, (now, then)
                 in enumerate(zip(waits_now, waits_then, strict=True)) if now != then}
        return GroupWindow(start, end, attribute, name, counts, sums, waits)
