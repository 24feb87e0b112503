"""placewatch's pure core: event model, fairness arithmetic, detectors and the processing core.

Nothing in this package performs I/O, reads the clock or the environment, or logs: time comes
with the events, randomness from injected seeds, configuration as :class:`CoreConfig`.
"""

from detectors.alerts import Alert, AlertBook
from detectors.config import CoreConfig
from detectors.disparity import DisparityFinding, StandingDisparity
from detectors.events import (
    REJECTION_REASONS,
    Decision,
    Job,
    Outcome,
    Override,
    Placement,
    Rejection,
    Requested,
    SchedulerInfo,
    decode_event,
)
from detectors.fairness import ParityFigures, parity, wilson_interval, z_for_confidence
from detectors.groups import OVERFLOW_GROUP, EquityLedger, GroupStats
from detectors.ingest import OutcomeJoiner, RecentIds
from detectors.overrides import OverrideWatch
from detectors.pipeline import AuditContext, AuditCore, DeadLetter, Effects
from detectors.rates import RATE_BY_NAME, RATE_METRICS, RATES, RateSpec
from detectors.registry import ALERT_KINDS
from detectors.sampler import AuditSampler
from detectors.summary import fairness_summary

__all__ = [
    "ALERT_KINDS",
    "OVERFLOW_GROUP",
    "RATES",
    "RATE_BY_NAME",
    "RATE_METRICS",
    "REJECTION_REASONS",
    "Alert",
    "AlertBook",
    "AuditContext",
    "AuditCore",
    "AuditSampler",
    "CoreConfig",
    "DeadLetter",
    "Decision",
    "DisparityFinding",
    "Effects",
    "EquityLedger",
    "GroupStats",
    "Job",
    "Outcome",
    "OutcomeJoiner",
    "Override",
    "OverrideWatch",
    "ParityFigures",
    "Placement",
    "RateSpec",
    "RecentIds",
    "Rejection",
    "Requested",
    "SchedulerInfo",
    "StandingDisparity",
    "decode_event",
    "fairness_summary",
    "parity",
    "wilson_interval",
    "z_for_confidence",
]
