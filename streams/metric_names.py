"""Every exported metric name, defined once (dashboards and alert tests import these).

Documented with their labels in docs/metrics.md.
"""

from __future__ import annotations

PREFIX = "placewatch"
EVENTS = f"{PREFIX}_events"  # counter: events_total{kind}
DEAD_LETTERS = f"{PREFIX}_dead_letters"  # counter: dead_letters_total{reason}
ORPHANED_OUTCOMES = f"{PREFIX}_orphaned_outcomes"  # counter
JOINED_OUTCOMES = f"{PREFIX}_joined_outcomes"  # counter
UNMATCHED_PLACEMENTS = f"{PREFIX}_unmatched_placements"  # counter
PENDING_JOINS = f"{PREFIX}_pending_joins"  # gauge {side}
AUDITS = f"{PREFIX}_audits"  # counter
AUDITS_EXPLAINED = f"{PREFIX}_audits_explained"  # counter
AUDITS_DEFERRED = f"{PREFIX}_audits_deferred"  # counter
AUDIT_BACKLOG = f"{PREFIX}_audit_backlog"  # gauge
SHADOW_SKIPPED = f"{PREFIX}_shadow_training_skipped"  # counter
SHADOW_EXAMPLES = f"{PREFIX}_audit_model_examples"  # gauge {model}
SHADOW_ACCURACY = f"{PREFIX}_audit_model_accuracy"  # gauge {model}
ALERTS = f"{PREFIX}_alerts"  # counter {kind}
ALERTS_OPEN = f"{PREFIX}_alerts_open"  # gauge {kind}
ALERTS_RESOLVED = f"{PREFIX}_alerts_resolved"  # counter {kind}
ALERT_ACTIVE = f"{PREFIX}_alert_active"  # gauge {kind, attribute, group, metric, fingerprint}
GROUP_DECISIONS = f"{PREFIX}_group_decisions"  # counter {attribute, group, action}
GROUP_RATE = f"{PREFIX}_group_rate"  # gauge {attribute, group, metric}
GROUP_QUEUE_WAIT = f"{PREFIX}_group_queue_wait_seconds_mean"  # gauge {attribute, group}
GROUP_QUEUE_WAIT_P95 = f"{PREFIX}_group_queue_wait_seconds_p95"  # gauge {attribute, group}
GROUP_CPU_HOUR_COST = f"{PREFIX}_group_cost_per_cpu_hour"  # gauge {attribute, group}
PARITY_RATIO = f"{PREFIX}_parity_ratio"  # gauge {attribute, metric}
PARITY_DIFFERENCE = f"{PREFIX}_parity_difference"  # gauge {attribute, metric}
TRACKED_GROUPS = f"{PREFIX}_tracked_groups"  # gauge {attribute}
GROUP_OVERFLOW = f"{PREFIX}_group_overflow_decisions"  # counter {attribute}
FORECAST_BIAS = f"{PREFIX}_forecast_log_bias"  # gauge {attribute, group, quantity}
FORECAST_MAE = f"{PREFIX}_forecast_log_abs_error_mean"  # gauge {attribute, group, quantity}
EVENT_TIME = f"{PREFIX}_last_event_timestamp_seconds"  # gauge
