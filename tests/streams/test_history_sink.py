"""The history sink's day files: retention and a line cut short by a crash."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from detectors.history import StreamWindow
from streams.sinks.base import Batch
from streams.sinks.history import HistoryFiles, history_days, read_history


def test_day_files_are_pruned_past_retention_and_a_cut_line_is_counted(tmp_path: Path) -> None:
    sink = HistoryFiles(tmp_path, retention_days=8)
    for day in (1, 5, 12):
        start = f"2026-11-{day:02d}T00:00:00Z"
        sink.write(Batch(0, 0, [], [], [], history=[
            StreamWindow(start, start[:11] + "01:00:00Z", {"events_in": day})]))
    sink.close()
    assert [d.day for d, _ in history_days(tmp_path)] == [5, 12]
    with (tmp_path / "2026-11-05.jsonl").open("ab") as handle:  # lines not the sink's own
        handle.write(b'{"type":"stream","start":"yesterday","end":"2026-11-05T01:00:00Z"}\n'
                     b'{"type":"group","start":"2026-11-05T00:00:00Z","end":'
                     b'"2026-11-05T01:00:00Z","attribute":"a","group":"b","waits":{"99":1}}\n'
                     b'{"type":"stream","start":"2026-11-05T00:00:00Z","end":'
                     b'"2026-11-05T01:00:00Z","counts":{"events_in":-3}}\n')
    with (tmp_path / "2026-11-12.jsonl").open("ab") as handle:
        handle.write(b'{"type":"stream","start":"2026-11-12T0')  # being written, or a crash
    records, bad = read_history(tmp_path, dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    assert [r.counts["events_in"] for r in records] == [5, 12] and bad == 3


def test_a_window_from_a_clock_years_ahead_does_not_age_out_the_history(
        tmp_path: Path) -> None:
    sink = HistoryFiles(tmp_path, retention_days=8, today=lambda: dt.date(2026, 11, 21))
    for start in ("2026-11-20T00:00:00Z", "2029-06-01T00:00:00Z", "2026-11-21T00:00:00Z"):
        sink.write(Batch(0, 0, [], [], [], history=[StreamWindow(start, start[:11] + "01:00:00Z",
                                                                 {"events_in": 1})]))
    sink.close()
    assert [str(d) for d, _ in history_days(tmp_path)] == ["2026-11-20", "2026-11-21",
                                                           "2029-06-01"]
