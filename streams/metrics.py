"""Prometheus exposition: one custom collector that reads the core's state at scrape time.

Nothing on the event path touches Prometheus: the collector turns counters and ledgers into
metric families when scraped (pull model). Label cardinality is bounded by the core's
configuration: at most ``max_attributes + len(attribute_pairs)`` attributes, each with at most
``max_groups_per_attribute + 1`` groups.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from detectors.events import REJECTION_REASONS
from detectors.fairness import katz_ratio, parity, wilson_interval, z_for_confidence
from detectors.groups import OVERFLOW_GROUP, RATE_METRICS
from detectors.pipeline import AuditCore
from streams import metric_names as m
from streams.audit.worker import AuditStatus
from streams.findings import REMEDIATION_BUCKETS, figures
from streams.health import LiveHealth
from streams.sinks.outbox import DELIVERY_BUCKETS

__all__ = ["CoreCollector", "build_registry"]


class CoreCollector(Collector):
    """Reads an :class:`AuditCore` under ``lock`` (shared with the thread feeding it)."""

    def __init__(self, core: AuditCore, lock: AbstractContextManager[object] | None = None,
                 audit_status: Callable[[], AuditStatus] | None = None,
                 health: Callable[[], LiveHealth | None] | None = None,
                 findings: Callable[[], Path | None] | None = None):
        self._core = core
        self._lock = lock or nullcontext()
        self._audit_status = audit_status
        self._health = health
        self._findings = findings

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            yield from self._families()
        path = self._findings() if self._findings is not None else None
        if path is not None:  # its own connection, outside the core's lock
            yield from _finding_families(path, [k.kind for k in self._core.alert_kinds])

    def _families(self) -> Iterator[Metric]:
        core = self._core
        events = CounterMetricFamily(m.EVENTS, "Input events by what became of them.",
                                     labels=["kind"])
        for kind, value in (("placement", core.placements), ("outcome", core.outcomes),
                            ("duplicate", core.duplicates), ("rejected", core.rejected)):
            events.add_metric([kind], value)
        yield events
        dead = CounterMetricFamily(m.DEAD_LETTERS, "Rejected events by reason.",
                                   labels=["reason"])
        for reason in REJECTION_REASONS:
            dead.add_metric([reason], core.rejected_by_reason.get(reason, 0))
        yield dead
        yield CounterMetricFamily(m.ORPHANED_OUTCOMES,
                                  "Outcomes whose placement never arrived in time.",
                                  value=core.orphaned_outcomes)
        yield CounterMetricFamily(m.JOINED_OUTCOMES, "Outcomes joined to their placement.",
                                  value=core.joined)
        yield CounterMetricFamily(m.UNMATCHED_PLACEMENTS,
                                  "Placements released before their outcome arrived.",
                                  value=core.joiner.unmatched_placements)
        pending = GaugeMetricFamily(m.PENDING_JOINS, "Events waiting for their join partner.",
                                    labels=["side"])
        pending.add_metric(["placement"], core.joiner.waiting_placements)
        pending.add_metric(["outcome"], core.joiner.waiting_outcomes)
        yield pending
        sequencer = core.sequencer
        yield GaugeMetricFamily(m.REORDER_BUFFERED, "Events waiting in the event-time "
                                "sequencer for their turn.", value=len(sequencer))
        yield CounterMetricFamily(m.LATE_EVENTS, "Events that arrived later than "
                                  "reorder_lateness_s (outcomes: outcome_settle_s) behind "
                                  "their partition and were processed where they arrived.",
                                  value=sequencer.late)
        yield CounterMetricFamily(m.REORDER_FORCED, "Events released before their turn "
                                  "because the sequencer held reorder_capacity events or "
                                  "reorder_max_mb of them.", value=sequencer.forced)
        held = GaugeMetricFamily(m.BUFFER_BYTES, "Memory the bounded buffers hold, as charged "
                                 "against their caps (join_max_mb, reorder_max_mb).",
                                 labels=["buffer"])
        held.add_metric(["join"], core.joiner.waiting_bytes)
        held.add_metric(["reorder"], sequencer.held_bytes)
        yield held
        ledger = core.ledger
        admission = ledger.admission
        untracked = CounterMetricFamily(m.UNTRACKED_ATTRIBUTES, "Attribute occurrences not "
                                        "audited: a key not yet admitted, a key too long, or "
                                        "no attribute slot left (max_attributes).",
                                        labels=["reason"])
        untracked.add_metric(["awaiting_admission"], 0 if admission is None else admission.awaiting)
        untracked.add_metric(["key_too_long"], 0 if admission is None else admission.too_long)
        untracked.add_metric(["no_slot"], ledger.untracked_keys)
        yield untracked
        yield CounterMetricFamily(m.AUDITS, "Decisions deep-audited.", value=core.audited)
        overrides = CounterMetricFamily(m.OVERRIDES, "Placements that carried a manual "
                                        "override: within its limit (active) or past its expiry "
                                        "or maximum age (expired).", labels=["state"])
        overrides.add_metric(["active"], core.overrides_applied - core.overrides_expired)
        overrides.add_metric(["expired"], core.overrides_expired)
        yield overrides
        if self._audit_status is not None:
            yield from self._audit_families(self._audit_status(), core)
        yield from self._alert_families()
        yield from self._group_families()
        yield from self._detector_families()
        if core.watermark != float("-inf"):
            yield GaugeMetricFamily(m.EVENT_TIME, "Latest event time seen (Unix seconds).",
                                    value=core.watermark)
        health = self._health() if self._health is not None else None
        if health is not None:
            yield from self._health_families(health)

    @staticmethod
    def _health_families(health: LiveHealth) -> Iterator[Metric]:
        yield GaugeMetricFamily(m.STARTED_AT, "When this run started (Unix seconds).",
                                value=health.started_at)
        if health.last_batch_at is not None:
            yield GaugeMetricFamily(m.LAST_BATCH_AT, "Wall-clock time the latest batch of "
                                    "events was processed (Unix seconds).",
                                    value=health.last_batch_at)
        yield CounterMetricFamily(m.PROCESSING_SECONDS, "Wall-clock seconds spent processing "
                                  "events in the core.", value=health.processing_seconds)
        yield CounterMetricFamily(m.BATCHES, "Batches of events processed.",
                                  value=health.batches)
        if health.chain_ok is not None and health.chain_checked_at is not None:
            yield GaugeMetricFamily(m.AUDIT_CHAIN_OK, "1 if the audit store's hash chain "
                                    "verified at the latest check, 0 if it did not.",
                                    value=1 if health.chain_ok else 0)
            yield GaugeMetricFamily(m.AUDIT_CHAIN_RECORDS, "Records in the chain at the "
                                    "latest check.", value=health.chain_records)
            yield GaugeMetricFamily(m.AUDIT_CHAIN_CHECKED_AT, "When the chain was last "
                                    "verified (Unix seconds).", value=health.chain_checked_at)
        if health.delivery:
            yield from _delivery_families(health)
        if health.consumer is not None:
            lag, committed = health.consumer()
            lags = GaugeMetricFamily(m.CONSUMER_LAG, "Messages in each partition of the "
                                     "events topic after the position placewatch last "
                                     "committed (behind durable state).",
                                     labels=["topic", "partition"])
            positions = GaugeMetricFamily(m.CONSUMER_COMMITTED, "The position placewatch "
                                          "last committed in each partition of the events "
                                          "topic.", labels=["topic", "partition"])
            for (topic, partition), value in sorted(lag.items()):
                lags.add_metric([topic, str(partition)], value)
            for (topic, partition), value in sorted(committed.items()):
                positions.add_metric([topic, str(partition)], value)
            yield lags
            yield positions


    def _detector_families(self) -> Iterator[Metric]:
        core = self._core
        statistic = GaugeMetricFamily(
            m.DRIFT_STATISTIC, "Evidence of each sequential watch now: in phase alarm the "
            "CUSUM that raises the alert above placewatch_drift_threshold, in phase recovery "
            "the one that resolves it (a River drift_detector exports its level instead).",
            labels=["watch", "attribute", "group", "metric", "phase"])
        growth = GaugeMetricFamily(
            m.AMPLIFICATION_GROWTH, "For a group in a drift alarm, its shortfall since "
            "detection minus its shortfall at detection, final once the growth test has its "
            "trend_window (amplification fires when this is significant and at least "
            "trend_min_growth).",
            labels=["attribute", "group", "metric"])
        for detector in core.detectors.values():
            for stat in detector.statistics(core.ledger):
                statistic.add_metric([stat.watch, stat.attribute, stat.group, stat.metric,
                                      stat.phase], stat.value)
        for attribute in core.ledger.attribute_names:
            for name, stats in sorted(core.ledger.groups[attribute].items()):
                for metric, watch in sorted((stats.drift or {}).items()):
                    so_far = None if watch.ratio is None else watch.growth
                    if so_far is not None:
                        growth.add_metric([attribute, name, metric], so_far)
        yield statistic
        yield growth
        if core.family_threshold == core.family_threshold:  # not NaN: evaluated once
            yield GaugeMetricFamily(
                m.DRIFT_THRESHOLD, "The CUSUM threshold every sequential watch is tested "
                "against: one false-alarm budget (false_alarms_per_million) shared by all.",
                value=core.family_threshold)

    def _alert_families(self) -> Iterator[Metric]:
        core = self._core
        alerts = CounterMetricFamily(m.ALERTS, "Alerts fired, by kind.", labels=["kind"])
        resolved = CounterMetricFamily(m.ALERTS_RESOLVED, "Alerts resolved, by kind.",
                                       labels=["kind"])
        open_alerts = GaugeMetricFamily(m.ALERTS_OPEN, "Alerts open now, by kind.",
                                        labels=["kind"])
        active = GaugeMetricFamily(
            m.ALERT_ACTIVE, "1 for every alert open now (the series disappears when it "
            "resolves); fingerprint is the alerts.jsonl fingerprint.",
            labels=["kind", "attribute", "group", "metric", "fingerprint"])
        value = GaugeMetricFamily(m.ALERT_VALUE, "The observed value an open alert fired "
                                  "on (its alerts.jsonl value).",
                                  labels=["kind", "attribute", "group", "metric", "fingerprint"])
        reference = GaugeMetricFamily(m.ALERT_REFERENCE, "What the value was compared with "
                                      "when the alert fired (its alerts.jsonl reference).",
                                      labels=["kind", "attribute", "group", "metric",
                                              "fingerprint"])
        fired_at = GaugeMetricFamily(m.ALERT_FIRED_AT, "Event time an open alert fired at "
                                     "(Unix seconds).",
                                     labels=["kind", "attribute", "group", "metric",
                                             "fingerprint"])
        same = GaugeMetricFamily(m.ALERT_SAME_POPULATION, "For an open alert that stands for "
                                 "a group of another attribute made of the same decisions: "
                                 "that group, and the share of their latest decisions shared.",
                                 labels=["fingerprint", "attribute", "group"])
        kinds = [kind.kind for kind in core.alert_kinds]
        open_by_kind = dict.fromkeys(kinds, 0)
        for key, fired, since in core.alert_book.open_alerts():
            open_by_kind[key[0]] = open_by_kind.get(key[0], 0) + 1
            labels = [fired.kind, fired.attribute or "", fired.group or "", fired.metric,
                      fired.fingerprint]
            active.add_metric(labels, 1)
            value.add_metric(labels, fired.value)
            if isinstance(fired.reference, int | float):
                reference.add_metric(labels, fired.reference)
            fired_at.add_metric(labels, since)
            also = fired.details.get("same_population")
            for entry in also if isinstance(also, list) else ():
                same.add_metric([fired.fingerprint, str(entry["attribute"]),
                                 str(entry["group"])], float(entry["shared"]))
        for kind in kinds:
            alerts.add_metric([kind], core.alerts_by_kind.get(kind, 0))
            resolved.add_metric([kind], core.resolved_by_kind.get(kind, 0))
            open_alerts.add_metric([kind], open_by_kind[kind])
        yield from (alerts, resolved, open_alerts, active, value, reference, fired_at, same)

    @staticmethod
    def _audit_families(status: AuditStatus, core: AuditCore) -> Iterator[Metric]:
        yield CounterMetricFamily(m.AUDITS_EXPLAINED, "Sampled decisions explained in full.",
                                  value=status.explained)
        yield CounterMetricFamily(m.AUDITS_DEFERRED, "Sampled decisions recorded without "
                                  "explanations because the deep-audit backlog was full.",
                                  value=status.deferred)
        yield GaugeMetricFamily(m.AUDIT_BACKLOG, "Sampled decisions waiting to be explained.",
                                value=status.backlog)
        if status.backlog_limit is not None:
            yield GaugeMetricFamily(m.AUDIT_BACKLOG_LIMIT, "Backlog beyond which new samples "
                                    "are recorded deferred (audit_backlog).",
                                    value=status.backlog_limit)
        yield CounterMetricFamily(m.SHADOW_SKIPPED, "Training examples the shadow model "
                                  "skipped because the deep-audit worker was behind.",
                                  value=status.training_skipped)
        flips = CounterMetricFamily(m.AUDIT_GROUP_FLIPS, "Explained decisions of each group "
                                    "whose shadow-model answer changes when only that "
                                    "attribute's value is changed.", labels=["attribute", "group"])
        checks = CounterMetricFamily(m.AUDIT_GROUP_FLIP_CHECKS, "Explained decisions of each "
                                     "group checked for a group flip.",
                                     labels=["attribute", "group"])
        # every tracked group from the start (at 0), so increase() sees its first flips
        # one copy, in one C call under the GIL: the audit path adds to it from another thread
        flip_counts = dict(status.group_flips)
        cells = set(flip_counts)
        for attribute in core.ledger.attribute_names:
            cells.update((attribute, name) for name in core.ledger.groups[attribute])
        for cell in sorted(cells):
            flipped, checked = flip_counts.get(cell, (0, 0))
            flips.add_metric(list(cell), flipped)
            checks.add_metric(list(cell), checked)
        yield flips
        yield checks
        examples = GaugeMetricFamily(m.SHADOW_EXAMPLES, "Examples each audit model has learned.",
                                     labels=["model"])
        accuracy = GaugeMetricFamily(m.SHADOW_ACCURACY, "Prequential accuracy of each audit "
                                     "model over its last 1,000 examples.", labels=["model"])
        for model, count, value in (
                ("shadow", status.shadow_examples, status.shadow_accuracy),
                ("deadline", status.deadline_examples, status.deadline_accuracy)):
            examples.add_metric([model], count)
            if value is not None:
                accuracy.add_metric([model], value)
        yield examples
        yield accuracy
        yield GaugeMetricFamily(m.SHADOW_FEATURES, "Named feature columns of the audit models "
                                "(shadow_max_features at most).", value=status.shadow_features)
        yield CounterMetricFamily(m.SHADOW_FOLDED, "Learned feature columns folded into an "
                                  "overflow column because shadow_max_features was reached.",
                                  value=status.shadow_features_folded)

    def _group_families(self) -> Iterator[Metric]:
        core = self._core
        ledger = core.ledger
        support = core.config.min_group_support
        decisions = CounterMetricFamily(m.GROUP_DECISIONS, "Decisions per group and action.",
                                        labels=["attribute", "group", "action"])
        rates = GaugeMetricFamily(m.GROUP_RATE, "Per-group rates since start.",
                                  labels=["attribute", "group", "metric"])
        confidence = core.config.confidence
        z = z_for_confidence(confidence)
        lower = GaugeMetricFamily(m.GROUP_RATE_LOWER, f"Lower end of the {confidence:.0%} "
                                  "Wilson interval of each group rate.",
                                  labels=["attribute", "group", "metric"])
        upper = GaugeMetricFamily(m.GROUP_RATE_UPPER, f"Upper end of the {confidence:.0%} "
                                  "Wilson interval of each group rate.",
                                  labels=["attribute", "group", "metric"])
        rate_support = GaugeMetricFamily(m.GROUP_RATE_SUPPORT, "Decisions each group rate is "
                                         "computed over (its denominator).",
                                         labels=["attribute", "group", "metric"])
        waits = GaugeMetricFamily(m.GROUP_QUEUE_WAIT, "Mean queue wait per group (seconds).",
                                  labels=["attribute", "group"])
        ratio = GaugeMetricFamily(m.PARITY_RATIO,
                                  "Smallest over largest group rate (supported groups).",
                                  labels=["attribute", "metric"])
        diff = GaugeMetricFamily(m.PARITY_DIFFERENCE,
                                 "Largest minus smallest group rate (supported groups).",
                                 labels=["attribute", "metric"])
        ratio_lower = GaugeMetricFamily(
            m.PARITY_RATIO_LOWER, f"Lower end of the parity ratio's {confidence:.0%} Katz "
            "interval, simultaneous over the attribute's groups (Bonferroni).",
            labels=["attribute", "metric"])
        ratio_upper = GaugeMetricFamily(
            m.PARITY_RATIO_UPPER, f"Upper end of the parity ratio's {confidence:.0%} Katz "
            "interval, simultaneous over the attribute's groups (Bonferroni).",
            labels=["attribute", "metric"])
        tracked = GaugeMetricFamily(m.TRACKED_GROUPS, "Groups tracked per attribute.",
                                    labels=["attribute"])
        p95 = GaugeMetricFamily(m.GROUP_QUEUE_WAIT_P95, "95th percentile queue wait per group "
                                "(seconds, within a factor of 1.25).",
                                labels=["attribute", "group"])
        unit_cost = GaugeMetricFamily(m.GROUP_CPU_HOUR_COST, "Mean price per hour per requested "
                                      "vCPU of the group's placements (deployment currency).",
                                      labels=["attribute", "group"])
        bias = GaugeMetricFamily(m.FORECAST_BIAS, "Mean log(actual / predicted) per group.",
                                 labels=["attribute", "group", "quantity"])
        mae = GaugeMetricFamily(m.FORECAST_MAE, "Mean |log(actual / predicted)| per group.",
                                labels=["attribute", "group", "quantity"])
        overflow = CounterMetricFamily(m.GROUP_OVERFLOW,
                                       "Decisions counted in the overflow group.",
                                       labels=["attribute"])
        spend = CounterMetricFamily(m.GROUP_SPEND, "Spend of the group's placements on cheap "
                                    "(preferred) and on other stated tiers: predicted_cost, "
                                    "else price_per_hour x predicted runtime (deployment "
                                    "currency).", labels=["attribute", "group", "tier"])
        priced = CounterMetricFamily(m.GROUP_PRICED, "Placements counted in "
                                     "placewatch_group_spend_total.",
                                     labels=["attribute", "group", "tier"])
        for attribute in ledger.attribute_names:
            table = ledger.groups[attribute]
            tracked.add_metric([attribute], len(table))
            overflow.add_metric([attribute], ledger.overflowed[attribute])
            for name in sorted(table):
                stats = table[name]
                for action, value in (("place", stats.placed), ("queue", stats.queued),
                                      ("preempt", stats.preempted), ("reject", stats.rejected)):
                    decisions.add_metric([attribute, name, action], value)
                for metric in RATE_METRICS:
                    num, den = stats.rate_counts(metric)
                    if den:
                        labels = [attribute, name, metric]
                        rates.add_metric(labels, num / den)
                        lo, hi = wilson_interval(num, den, z)
                        lower.add_metric(labels, lo)
                        upper.add_metric(labels, hi)
                        rate_support.add_metric(labels, den)
                if stats.wait_n:
                    waits.add_metric([attribute, name], stats.wait_sum / stats.wait_n)
                    p95.add_metric([attribute, name], stats.wait_p95_s or 0.0)
                if stats.unit_price_n:
                    unit_cost.add_metric([attribute, name], stats.cost_per_cpu_hour or 0.0)
                for tier, n, total in (  # at 0 from the start, so increase() sees the first
                        ("cheap", stats.cheap_spend_n, stats.cheap_spend_sum),
                        ("premium", stats.premium_spend_n, stats.premium_spend_sum)):
                    spend.add_metric([attribute, name, tier], total)
                    priced.add_metric([attribute, name, tier], n)
                for quantity, watch in (stats.forecast or {}).items():
                    if watch.count:
                        bias.add_metric([attribute, name, quantity], watch.sum / watch.count)
                        mae.add_metric([attribute, name, quantity],
                                       watch.abs_sum / watch.count)
            for metric in RATE_METRICS:
                supported = {}
                counts = {}
                for name, stats in table.items():
                    num, den = stats.rate_counts(metric)
                    if name != OVERFLOW_GROUP and den >= support:
                        supported[name] = num / den
                        counts[name] = (num, den)
                if len(supported) >= 2:
                    fig = parity(supported)
                    ratio.add_metric([attribute, metric], fig.ratio)
                    diff.add_metric([attribute, metric], fig.difference)
                    if supported[fig.max_group] > 0:  # the report's interval, same groups
                        z_sim = z_for_confidence(1 - (1 - confidence) / (len(supported) - 1))
                        _, lo, hi = katz_ratio(*counts[fig.min_group], *counts[fig.max_group],
                                               z_sim)
                        ratio_lower.add_metric([attribute, metric], lo)
                        ratio_upper.add_metric([attribute, metric], hi)
        yield from (decisions, rates, lower, upper, rate_support, waits, p95, unit_cost, spend,
                    priced, ratio, ratio_lower, ratio_upper, diff, tracked, overflow, bias, mae)


def _finding_families(path: Path, kinds: list[str]) -> Iterator[Metric]:
    found = figures(path)
    if found is None:
        return
    unresolved = GaugeMetricFamily(m.FINDINGS_UNRESOLVED, "Findings not resolved yet, by "
                                   "kind and whether someone acknowledged them.",
                                   labels=["kind", "state"])
    for kind in kinds:
        for state in ("open", "acknowledged"):
            unresolved.add_metric([kind, state], found.unresolved.get((kind, state), 0))
    yield unresolved
    age = HistogramMetricFamily(m.REMEDIATION_AGE, "Time from detecting a finding to its "
                                "resolution, by the detector or a person (docs/alerts.md).",
                                labels=["kind"])
    for kind in kinds:
        ages = [a for k, a in found.remediation if k == kind]
        buckets = [(f"{bound:g}", sum(1 for a in ages if a <= bound))
                   for bound in REMEDIATION_BUCKETS]
        buckets.append(("+Inf", len(ages)))
        age.add_metric([kind], buckets, sum(ages))
    yield age


def _delivery_families(health: LiveHealth) -> Iterator[Metric]:
    labels = ["target", "endpoint"]
    sent = CounterMetricFamily(m.ALERT_DELIVERIES, "Alerts accepted by each direct-delivery "
                               "target (Alertmanager re-sends included).", labels=labels)
    failed = CounterMetricFamily(m.ALERT_DELIVERY_FAILURES, "Failed delivery attempts per "
                                 "target (each is retried).", labels=labels)
    refused = CounterMetricFamily(m.ALERT_DELIVERY_REJECTED, "Deliveries the target refused "
                                  "for good (a 4xx other than 408 and 429); kept in the "
                                  "outbox's rejected table.", labels=labels)
    pending = GaugeMetricFamily(m.ALERT_DELIVERY_PENDING, "Alert edges in the outbox not yet "
                                "accepted by the target.", labels=labels)
    last = GaugeMetricFamily(m.ALERT_DELIVERY_LAST_SUCCESS, "When the target last accepted a "
                             "delivery (Unix seconds).", labels=labels)
    latency = HistogramMetricFamily(m.ALERT_DELIVERY_SECONDS, "Seconds from the arrival of "
                                    "the first event of an alert's batch to the target's "
                                    "first acceptance of the edge.", labels=labels)
    for target, stats in sorted(health.delivery.items()):
        names = [target, stats.endpoint]
        sent.add_metric(names, stats.sent)
        failed.add_metric(names, stats.failures)
        refused.add_metric(names, stats.rejected)
        pending.add_metric(names, stats.pending)
        if stats.last_success_at is not None:
            last.add_metric(names, stats.last_success_at)
        buckets = [(f"{bound:g}", count)
                   for bound, count in zip(DELIVERY_BUCKETS, stats.latency_buckets, strict=True)]
        buckets.append(("+Inf", stats.latency_count))
        latency.add_metric(names, buckets, stats.latency_sum)
    yield from (sent, failed, refused, pending, last, latency)

def build_registry(core: AuditCore, lock: threading.Lock | None = None,
                   registry: CollectorRegistry | None = None,
                   audit_status: Callable[[], AuditStatus] | None = None,
                   health: Callable[[], LiveHealth | None] | None = None,
                   findings: Callable[[], Path | None] | None = None) -> CollectorRegistry:
    """A registry holding only placewatch's collector (no process metrics: deterministic;
    ``health`` gives a live run's wall-clock figures, None in a replay; ``findings`` the
    run directory's findings store once there is one)."""
    registry = registry or CollectorRegistry(auto_describe=False)
    registry.register(CoreCollector(core, lock, audit_status, health, findings))
    return registry
