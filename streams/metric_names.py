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
REORDER_BUFFERED = f"{PREFIX}_reorder_buffered_events"  # gauge
LATE_EVENTS = f"{PREFIX}_late_events"  # counter
REORDER_FORCED = f"{PREFIX}_reorder_forced"  # counter
AUDITS = f"{PREFIX}_audits"  # counter
AUDITS_EXPLAINED = f"{PREFIX}_audits_explained"  # counter
AUDITS_DEFERRED = f"{PREFIX}_audits_deferred"  # counter
AUDIT_BACKLOG = f"{PREFIX}_audit_backlog"  # gauge
AUDIT_BACKLOG_LIMIT = f"{PREFIX}_audit_backlog_limit"  # gauge (worker process only)
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
GROUP_SPEND = f"{PREFIX}_group_spend"  # counter: group_spend_total{attribute, group, tier}
GROUP_PRICED = f"{PREFIX}_group_priced_placements"  # counter {attribute, group, tier}
PARITY_RATIO = f"{PREFIX}_parity_ratio"  # gauge {attribute, metric}
PARITY_DIFFERENCE = f"{PREFIX}_parity_difference"  # gauge {attribute, metric}
PARITY_RATIO_LOWER = f"{PREFIX}_parity_ratio_lower"  # gauge {attribute, metric}
PARITY_RATIO_UPPER = f"{PREFIX}_parity_ratio_upper"  # gauge {attribute, metric}
TRACKED_GROUPS = f"{PREFIX}_tracked_groups"  # gauge {attribute}
GROUP_OVERFLOW = f"{PREFIX}_group_overflow_decisions"  # counter {attribute}
FORECAST_BIAS = f"{PREFIX}_forecast_log_bias"  # gauge {attribute, group, quantity}
FORECAST_MAE = f"{PREFIX}_forecast_log_abs_error_mean"  # gauge {attribute, group, quantity}
EVENT_TIME = f"{PREFIX}_last_event_timestamp_seconds"  # gauge
ALERT_VALUE = f"{PREFIX}_alert_value"  # gauge {kind, attribute, group, metric, fingerprint}
ALERT_REFERENCE = f"{PREFIX}_alert_reference"  # gauge, same labels
ALERT_FIRED_AT = f"{PREFIX}_alert_fired_timestamp_seconds"  # gauge, same labels
ALERT_SAME_POPULATION = f"{PREFIX}_alert_same_population"  # gauge {fingerprint, attribute, group}
GROUP_RATE_LOWER = f"{PREFIX}_group_rate_lower"  # gauge {attribute, group, metric}
GROUP_RATE_UPPER = f"{PREFIX}_group_rate_upper"  # gauge {attribute, group, metric}
GROUP_RATE_SUPPORT = f"{PREFIX}_group_rate_support"  # gauge {attribute, group, metric}
DRIFT_STATISTIC = f"{PREFIX}_drift_statistic"  # gauge {watch, attribute, group, metric, phase}
DRIFT_THRESHOLD = f"{PREFIX}_drift_threshold"  # gauge
AMPLIFICATION_GROWTH = f"{PREFIX}_amplification_growth"  # gauge {attribute, group, metric}
AUDIT_GROUP_FLIPS = f"{PREFIX}_audit_group_flips"  # counter {attribute, group}
AUDIT_GROUP_FLIP_CHECKS = f"{PREFIX}_audit_group_flip_checks"  # counter {attribute, group}
OVERRIDES = f"{PREFIX}_override_placements"  # counter {state}
AUDIT_CHAIN_OK = f"{PREFIX}_audit_chain_ok"  # gauge (live runs)
AUDIT_CHAIN_RECORDS = f"{PREFIX}_audit_chain_records"  # gauge (live runs)
AUDIT_CHAIN_CHECKED_AT = f"{PREFIX}_audit_chain_checked_timestamp_seconds"  # gauge (live)
LAST_BATCH_AT = f"{PREFIX}_last_batch_processed_timestamp_seconds"  # gauge (live runs)
PROCESSING_SECONDS = f"{PREFIX}_processing_seconds"  # counter (live runs)
BATCHES = f"{PREFIX}_batches"  # counter (live runs)
STARTED_AT = f"{PREFIX}_start_timestamp_seconds"  # gauge (live runs)
ALERT_DELIVERIES = f"{PREFIX}_alert_deliveries"  # counter {target, endpoint} (direct delivery)
ALERT_DELIVERY_FAILURES = f"{PREFIX}_alert_delivery_failures"  # counter {target}
ALERT_DELIVERY_REJECTED = f"{PREFIX}_alert_delivery_rejected"  # counter {target, endpoint}
ALERT_DELIVERY_PENDING = f"{PREFIX}_alert_delivery_pending"  # gauge {target}
ALERT_DELIVERY_SECONDS = f"{PREFIX}_alert_delivery_seconds"  # histogram {target}
ALERT_DELIVERY_LAST_SUCCESS = f"{PREFIX}_alert_delivery_last_success_timestamp_seconds"
FINDINGS_UNRESOLVED = f"{PREFIX}_findings_unresolved"  # gauge {kind, state}
REMEDIATION_AGE = f"{PREFIX}_remediation_age_seconds"  # histogram {kind}
CONSUMER_LAG = f"{PREFIX}_consumer_lag"  # gauge {topic, partition} (Kafka source)
CONSUMER_COMMITTED = f"{PREFIX}_consumer_committed_offset"  # gauge {topic, partition} (Kafka)
