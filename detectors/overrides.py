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

__all__ = ["OverrideWatch"]


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
