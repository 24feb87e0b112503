"""Manual overrides that outlive their welcome.

The contract: an override still applied after its ``expires_at``, or, without one, more than
24 hours (``max_age_s``) after it was first seen, is a finding. An override without expiry is
identified by ``(by, reason)``; one not applied for ``max_age_s`` is forgotten, so a later use
starts a new episode. Sightings are remembered for at most ``capacity`` overrides. The limit
text returned names the instance (its expiry, or the start of its episode).

>>> import datetime as dt
>>> watch = OverrideWatch(max_age_s=86400, capacity=100)
>>> t0 = dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc)
>>> [watch.check("ops", "pin", t0 + dt.timedelta(hours=h), None) for h in (0, 12)]
[None, None]
>>> watch.check("ops", "pin", decided_at=t0 + dt.timedelta(hours=25), expires_at=None)
(3600.0, 'first seen 2026-11-02T00:00:00+00:00, limit 86400 s')
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict

__all__ = ["MIN_QUIET_PLACEMENTS", "LiftedOverrides", "OverrideWatch"]


class OverrideWatch:
    """Finds overrides applied past their expiry or past the maximum age."""

    def __init__(self, max_age_s: float, capacity: int = 10_000) -> None:
        if max_age_s < 0:
            raise ValueError(f"max_age_s must be >= 0, got {max_age_s}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._max_age_s = max_age_s
        self._capacity = capacity
        self._seen: OrderedDict[tuple[str, str], tuple[dt.datetime, dt.datetime]] = OrderedDict()

    def check(
        self,
        by: str | None,
        reason: str | None,
        decided_at: dt.datetime,
        expires_at: dt.datetime | None,
    ) -> tuple[float, str] | None:
        """``(seconds past the limit, what the limit was)`` when the override is stale."""
        if expires_at is not None:
            if decided_at > expires_at:
                return ((decided_at - expires_at).total_seconds(),
                        f"expires_at {expires_at.isoformat()}")
            return None
        key = (by or "", reason or "")
        seen = self._seen.get(key)
        if seen is None or (decided_at - seen[1]).total_seconds() > self._max_age_s:
            self._seen[key] = (decided_at, decided_at)
            self._seen.move_to_end(key)
            if len(self._seen) > self._capacity:
                self._seen.popitem(last=False)
            return None
        first = seen[0]
        self._seen[key] = (first, max(seen[1], decided_at))
        age = (decided_at - first).total_seconds()
        if age > self._max_age_s:
            return (age - self._max_age_s,
                    f"first seen {first.isoformat()}, limit {self._max_age_s:g} s")
        return None


MIN_QUIET_PLACEMENTS = 50
"""Placements that must arrive without an expired override before it can count as lifted."""


class _Sighting:
    __slots__ = ("by", "count", "gap", "past", "reason", "seen")

    def __init__(self, by: str | None, reason: str | None) -> None:
        self.by = by
        self.reason = reason
        self.seen = float("-inf")
        """Latest time the override was applied (never past the watermark then)."""
        self.count = 0
        """Placements the core had seen at the latest sighting."""
        self.gap = 0
        """Most placements that arrived between two sightings."""
        self.past = 0.0


class LiftedOverrides:
    """Decides when an expired override, still alerting, has been lifted.

    An override counts as lifted when neither of two clocks has seen it for a while. In event
    time, the watermark is ``quiet_s`` past its latest sighting. A sighting's time is capped
    at the watermark then, so one event with a far-future clock cannot hold the alert open.
    In arrival order, more placements have arrived since the latest sighting than twice the
    longest run between two earlier sightings, and at least :data:`MIN_QUIET_PLACEMENTS`.
    Arrival order matters because event time alone misleads when streams interleave. A shard
    that lags, a second input file that starts earlier, or a confirmed clock jump can put every
    sighting far behind the watermark while the override is still being applied.

    >>> lifted = LiftedOverrides(quiet_s=3600.0)
    >>> lifted.applied(("override_expired", None, None, "k"), "ops", "pin", 0.0, 0.0, 120.0, 1)
    >>> lifted.due(watermark=7200.0, placements=20)   # an hour on, but only 19 placements
    []
    >>> [(key[3], past) for key, by, reason, seen, past in lifted.due(7200.0, 60)]
    [('k', 120.0)]
    """

    def __init__(self, quiet_s: float) -> None:
        if not quiet_s > 0:
            raise ValueError(f"quiet_s must be > 0, got {quiet_s!r}")
        self._quiet_s = quiet_s
        self._open: dict[tuple[str, str | None, str | None, str], _Sighting] = {}

    def __len__(self) -> int:
        return len(self._open)

    def applied(self, key: tuple[str, str | None, str | None, str], by: str | None,
                reason: str | None, decided_at: float, watermark: float, past: float,
                placements: int) -> None:
        """The override of alert ``key`` was applied on a placement decided at ``decided_at``
        (the core's watermark and placement count are given after that placement)."""
        sighting = self._open.get(key)
        if sighting is None:
            sighting = self._open[key] = _Sighting(by, reason)
        else:
            sighting.gap = max(sighting.gap, placements - sighting.count)
        sighting.count = placements
        capped = min(decided_at, watermark)
        if capped >= sighting.seen:
            sighting.seen = capped
            # how far past its limit it was at the (capped) time it counts as applied
            sighting.past = max(past - (decided_at - capped), 0.0)

    def due(self, watermark: float, placements: int
            ) -> list[tuple[tuple[str, str | None, str | None, str], str | None, str | None,
                            float, float]]:
        """Overrides lifted by now, forgotten here: (key, by, reason, last seen, seconds past
        the limit when last seen)."""
        out = []
        for key, s in list(self._open.items()):
            quiet_arrivals = placements - s.count
            if watermark - s.seen > self._quiet_s and \
                    quiet_arrivals > max(2 * s.gap, MIN_QUIET_PLACEMENTS):
                del self._open[key]
                out.append((key, s.by, s.reason, s.seen, s.past))
        return out
