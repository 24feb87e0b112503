"""``override_expired``: a manual override still applied past its expiry or maximum age
(:class:`~detectors.overrides.OverrideWatch`), resolved once it is taken as lifted
(:class:`~detectors.overrides.LiftedOverrides`).

Found on the placement that carries it, not per batch. Each override instance (who, why, and
its limit) is its own alert; the key's last part names it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Final

from detectors.alerts import Alert, AlertKey, AlertKind, Where, iso
from detectors.config import CoreConfig
from detectors.detector import CoreDetector, CoreView, Edge, Fire, Resolve
from detectors.events import UNSET, Placement
from detectors.findings import duration
from detectors.groups import GroupStats
from detectors.overrides import LiftedOverrides, OverrideWatch

__all__ = ["OVERRIDE_EXPIRED", "OverrideExpiredDetector"]

OVERRIDE_EXPIRED: Final = AlertKind("override_expired", "PlacewatchOverrideExpired", "warning")


class OverrideExpiredDetector(CoreDetector):
    """Checks every overridden placement; resolves lifted overrides per batch."""

    kinds = (OVERRIDE_EXPIRED,)

    def __init__(self, config: CoreConfig) -> None:
        super().__init__(config)
        self._watch = OverrideWatch(config.override_max_age_s)
        self._lifted = LiftedOverrides(config.override_resolve_after_s)
        self.applied = 0
        """Placements that carried a manual override."""
        self.expired = 0
        """Of those, placements whose override was past its expiry or maximum age."""

    def on_placement(self, event: Placement, groups: list[GroupStats], where: Where,
                     core: CoreView) -> Iterator[Edge] | None:
        override = event.override
        if override is UNSET:
            return None
        self.applied += 1
        by = override.by or None
        reason = override.reason or None
        expires_at = override.expires_at if override.expires_at is not UNSET else None
        stale = self._watch.check(by, reason, event.decided_at, expires_at)
        if stale is None:
            return None
        self.expired += 1
        # JSON keeps two overrides apart whatever their text ("a|b", "c" is not "a", "b|c")
        key: AlertKey = ("override_expired", None, None,
                         json.dumps([by or "", reason or "", stale[1]], ensure_ascii=False))
        self._lifted.applied(key, by, reason, event.decided_at.timestamp(), core.watermark,
                             stale[0], core.placements)
        if core.alert_book.is_open(key):
            return None
        return iter((Fire(key, override_alert(key, by, reason, stale[0], stale[1], event.job_id,
                                             event.attributes, where)),))

    def counters(self) -> dict[str, int]:
        return {"overrides_applied": self.applied, "overrides_expired": self.expired}

    def evaluate(self, core: CoreView, where: Where) -> Iterator[Edge]:
        if not self._lifted:
            return
        for key, by, reason, seen, past in self._lifted.due(core.watermark, core.placements):
            last = dt.datetime.fromtimestamp(seen, dt.UTC)
            yield Resolve(key, past,
                          override_resolution(by, reason, last, core.watermark - seen))


def override_alert(key: AlertKey, by: str | None, reason: str | None, past: float, limit: str,
                   job_id: str, attributes: dict[str, str], where: Where) -> Alert:
    """``override_expired``: a manual override outlived its expiry."""
    return OVERRIDE_EXPIRED.firing(
        key, where, metric="override_past_limit_seconds", value=past, reference=limit,
        summary=(f"Override by {by or 'unknown'} ({reason or 'no reason'}) still applied "
                 f"{past / 3600:.1f} h past its limit ({limit})."),
        details={"override_by": by, "override_reason": reason, "job_id": job_id,
                 "attributes": dict(sorted(attributes.items()))})


def override_resolution(by: str | None, reason: str | None, last_seen: dt.datetime,
                        quiet_s: float) -> str:
    """Why an ``override_expired`` alert resolved: the override stopped being applied."""
    return (f"Override by {by or 'unknown'} ({reason or 'no reason'}) not applied since "
            f"{iso(last_seen)} ({duration(quiet_s)} of events without it): taken as lifted.")
