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

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from detectors.alerts import ALERT_KINDS
from detectors.events import REJECTION_REASONS
from detectors.fairness import parity
from detectors.groups import OVERFLOW_GROUP, RATE_METRICS
from detectors.pipeline import AuditCore
from streams import metric_names as m
from streams.audit.worker import AuditStatus

__all__ = ["CoreCollector", "build_registry"]


class CoreCollector(Collector):
    """Reads an :class:`AuditCore` under ``lock`` (shared with the thread feeding it)."""

    def __init__(self, core: AuditCore, lock: AbstractContextManager[object] | None = None,
                 audit_status: Callable[[], AuditStatus] | None = None):
        self._core = core
        self._lock = lock or nullcontext()
        self._audit_status = audit_status

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            yield from self._families()

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
        yield CounterMetricFamily(m.AUDITS, "Decisions deep-audited.", value=core.audited)
        if self._audit_status is not None:
            yield from self._audit_families(self._audit_status())
        yield from self._alert_families()
        yield from self._group_families()
        if core.watermark != float("-inf"):
            yield GaugeMetricFamily(m.EVENT_TIME, "Latest event time seen (Unix seconds).",
                                    value=core.watermark)

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
        open_by_kind = dict.fromkeys(ALERT_KINDS, 0)
        for key, fired, _ in core.alert_book.open_alerts():
            open_by_kind[key[0]] = open_by_kind.get(key[0], 0) + 1
            active.add_metric([fired.kind, fired.attribute or "", fired.group or "",
                               fired.metric, fired.fingerprint], 1)
        for kind in ALERT_KINDS:
            alerts.add_metric([kind], core.alerts_by_kind.get(kind, 0))
            resolved.add_metric([kind], core.resolved_by_kind.get(kind, 0))
            open_alerts.add_metric([kind], open_by_kind[kind])
        yield from (alerts, resolved, open_alerts, active)

    @staticmethod
    def _audit_families(status: AuditStatus) -> Iterator[Metric]:
        yield CounterMetricFamily(m.AUDITS_EXPLAINED, "Sampled decisions explained in full.",
                                  value=status.explained)
        yield CounterMetricFamily(m.AUDITS_DEFERRED, "Sampled decisions recorded without "
                                  "explanations because the deep-audit backlog was full.",
                                  value=status.deferred)
        yield GaugeMetricFamily(m.AUDIT_BACKLOG, "Sampled decisions waiting to be explained.",
                                value=status.backlog)
        yield CounterMetricFamily(m.SHADOW_SKIPPED, "Training examples the shadow model "
                                  "skipped because the deep-audit worker was behind.",
                                  value=status.training_skipped)
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

    def _group_families(self) -> Iterator[Metric]:
        core = self._core
        ledger = core.ledger
        support = core.config.min_group_support
        decisions = CounterMetricFamily(m.GROUP_DECISIONS, "Decisions per group and action.",
                                        labels=["attribute", "group", "action"])
        rates = GaugeMetricFamily(m.GROUP_RATE, "Per-group rates since start.",
                                  labels=["attribute", "group", "metric"])
        waits = GaugeMetricFamily(m.GROUP_QUEUE_WAIT, "Mean queue wait per group (seconds).",
                                  labels=["attribute", "group"])
        ratio = GaugeMetricFamily(m.PARITY_RATIO,
                                  "Smallest over largest group rate (supported groups).",
                                  labels=["attribute", "metric"])
        diff = GaugeMetricFamily(m.PARITY_DIFFERENCE,
                                 "Largest minus smallest group rate (supported groups).",
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
                        rates.add_metric([attribute, name, metric], num / den)
                if stats.wait_n:
                    waits.add_metric([attribute, name], stats.wait_sum / stats.wait_n)
                    p95.add_metric([attribute, name], stats.wait_p95_s or 0.0)
                if stats.unit_price_n:
                    unit_cost.add_metric([attribute, name], stats.cost_per_cpu_hour or 0.0)
                for quantity, watch in (stats.forecast or {}).items():
                    if watch.count:
                        bias.add_metric([attribute, name, quantity], watch.sum / watch.count)
                        mae.add_metric([attribute, name, quantity],
                                       watch.abs_sum / watch.count)
            for metric in RATE_METRICS:
                supported = {}
                for name, stats in table.items():
                    num, den = stats.rate_counts(metric)
                    if name != OVERFLOW_GROUP and den >= support:
                        supported[name] = num / den
                if len(supported) >= 2:
                    fig = parity(supported)
                    ratio.add_metric([attribute, metric], fig.ratio)
                    diff.add_metric([attribute, metric], fig.difference)
        yield from (decisions, rates, waits, p95, unit_cost, ratio, diff, tracked, overflow,
                    bias, mae)


def build_registry(core: AuditCore, lock: threading.Lock | None = None,
                   registry: CollectorRegistry | None = None,
                   audit_status: Callable[[], AuditStatus] | None = None) -> CollectorRegistry:
    """A registry holding only placewatch's collector (no process metrics: deterministic)."""
    registry = registry or CollectorRegistry(auto_describe=False)
    registry.register(CoreCollector(core, lock, audit_status))
    return registry
