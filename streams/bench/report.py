"""The weekly report's render time on three kinds of week (``placewatch bench report``).

An empty week is the baseline (the renderer's fixed cost: templates, matplotlib, WeasyPrint);
a simulated week with no findings; a week of thousands of groups, its history written by the
real history sink. Each is timed from reading the run directory to the PDF on disk.
"""

from __future__ import annotations

import datetime as dt
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from detectors.history import GroupWindow, StreamWindow, iso_utc
from streams.sinks.base import Batch
from streams.sinks.history import HistoryFiles

__all__ = ["ReportTiming", "report_times", "write_history"]


def write_history(directory: Path, monday: dt.datetime, groups: int, days: int = 14,
                  seed: int = 7) -> int:
    """Hourly history windows of ``days`` days from ``monday`` for ``groups`` teams of a fair
    stream (cheap-tier share 55% for everyone), written into ``directory/history`` by the
    history sink; returns the number of windows."""
    rng = random.Random(seed)
    sink = HistoryFiles(directory / "history", 400)
    written = 0
    start = monday.timestamp()
    for hour in range(days * 24):
        t0 = start + hour * 3600
        records: list[GroupWindow | StreamWindow] = []
        decisions_in = 0
        for g in range(groups):
            decisions = rng.randint(0, 4)
            if not decisions:
                continue
            placed = rng.randint(0, decisions)
            preferred = sum(rng.random() < 0.55 for _ in range(placed))
            decisions_in += decisions
            records.append(GroupWindow(
                iso_utc(t0), iso_utc(t0 + 3600), "team", f"team-{g:05d}",
                {"decisions": decisions, "placed": placed, "tiered": placed,
                 "preferred": preferred, "queued": decisions - placed,
                 "cheap_spend_n": preferred, "premium_spend_n": placed - preferred},
                {"cheap_spend_sum": preferred * 0.5,
                 "premium_spend_sum": (placed - preferred) * 2.5}, {}))
        records.append(StreamWindow(iso_utc(t0), iso_utc(t0 + 3600),
                                    {"events_in": decisions_in, "placements": decisions_in}))
        sink.write(Batch(0, 0, [], [], [], history=records))
        written += len(records)
    sink.close()
    return written


@dataclass(frozen=True, slots=True)
class ReportTiming:
    name: str
    seconds: float
    detail: str


def _render(week: str, data: Path, out: Path) -> float:
    from report.render import write_report
    from report.week import Week

    began = time.perf_counter()
    write_report(Week.parse(week), data, out, currency="USD", min_support=30,
                 confidence=0.95, audit_sample_rate=0.02, config_hash="bench")
    return time.perf_counter() - began


def report_times(groups: int = 3000, events: int = 60_000) -> list[ReportTiming]:
    """Render time of an empty week, a simulated week without findings and a week of
    ``groups`` groups."""
    from simulator import SCENARIOS, Simulation
    from streams.app import create_app
    from streams.settings import Settings

    out: list[ReportTiming] = []
    with tempfile.TemporaryDirectory(prefix="placewatch-bench-report-") as tmp:
        root = Path(tmp)
        empty = root / "empty"
        empty.mkdir()
        seconds = _render("2026-W45", empty, root / "r-empty")
        out.append(ReportTiming("empty week", seconds, "no data at all"))
        run = root / "baseline"
        app = create_app(Settings())
        summary = app.replay(((f"sim:{i}", raw) for i, raw in enumerate(
            Simulation(SCENARIOS["baseline"], events, seed=3))), run)
        seconds = _render("2026-W45", run, root / "r-baseline")
        out.append(ReportTiming("simulated week, no findings", seconds,
                                f"{events:,} events, {summary['alerts']} alerts"))
        many = root / "many"
        windows = write_history(many, dt.datetime(2026, 11, 9, tzinfo=dt.UTC), groups)
        seconds = _render("2026-W47", many, root / "r-many")
        out.append(ReportTiming(f"{groups:,} groups", seconds,
                                f"{windows:,} history windows over 14 days"))
    return out
