"""Alert edges as structured log lines (a live run's console and its log collector)."""

from __future__ import annotations

import logging

from streams.logs import log_event
from streams.sinks.base import Batch

__all__ = ["AlertLog"]

_LOG = logging.getLogger("placewatch")


class AlertLog:
    """Logs every firing edge as a warning and every resolved edge as information, one line
    each, with the alert's runbook."""

    name = "log"

    def __init__(self, runbook_base: str = "alerts/runbooks/") -> None:
        self.runbook_base = runbook_base

    def write(self, batch: Batch) -> None:
        for alert in batch.alerts:
            level = logging.WARNING if alert.state == "firing" else logging.INFO
            log_event(_LOG, level, alert.summary, alert=alert.alert, state=alert.state,
                      kind=alert.kind, attribute=alert.attribute, group=alert.group,
                      metric=alert.metric, value=alert.value, at=alert.at,
                      decision_id=alert.decision_id, fingerprint=alert.fingerprint,
                      runbook=f"{self.runbook_base}{alert.alert}.md")

    def durable(self) -> None:
        return None

    def close(self) -> None:
        return None
