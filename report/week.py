"""ISO weeks in a configured time zone: the period one report covers.

>>> week = Week.parse("2026-W47", "Europe/Berlin")
>>> week.start.isoformat(), week.end.isoformat()
('2026-11-16T00:00:00+01:00', '2026-11-23T00:00:00+01:00')
>>> week.previous().label, Week.containing(week.end, "Europe/Berlin").label
('2026-W46', '2026-W48')
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Week", "zone"]

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def zone(name: str) -> ZoneInfo:
    """A time zone by IANA name, with an error that says what is wrong."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as UTC or "
                         "Europe/Berlin") from exc


@dataclass(frozen=True, slots=True)
class Week:
    """Monday 00:00 to the next Monday 00:00, local time in ``tz``."""

    year: int
    number: int
    tz: str

    @classmethod
    def parse(cls, text: str, tz: str = "UTC") -> Week:
        match = _WEEK.match(text.strip())
        if match is None:
            raise ValueError(f"week must look like 2026-W47 (ISO year and week), got {text!r}")
        year, number = int(match.group(1)), int(match.group(2))
        try:
            dt.date.fromisocalendar(year, number, 1)
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a week of ISO year {year}") from exc
        zone(tz)
        return cls(year, number, tz)

    @classmethod
    def containing(cls, moment: dt.datetime, tz: str = "UTC") -> Week:
        year, number, _ = moment.astimezone(zone(tz)).isocalendar()
        return cls(year, number, tz)

    @property
    def label(self) -> str:
        return f"{self.year}-W{self.number:02d}"

    @property
    def start(self) -> dt.datetime:
        day = dt.date.fromisocalendar(self.year, self.number, 1)
        return dt.datetime.combine(day, dt.time(), zone(self.tz))

    @property
    def end(self) -> dt.datetime:
        day = dt.date.fromisocalendar(self.year, self.number, 1) + dt.timedelta(days=7)
        return dt.datetime.combine(day, dt.time(), zone(self.tz))

    def previous(self) -> Week:
        return Week.containing(self.start - dt.timedelta(days=1), self.tz)

    def days(self) -> list[dt.date]:
        """Its seven local days."""
        first = dt.date.fromisocalendar(self.year, self.number, 1)
        return [first + dt.timedelta(days=i) for i in range(7)]
