"""The processing core: raw event bytes in, state updated, effects queued. No I/O.

One :class:`AuditCore` runs the same code embedded (file replay, simulator) and on Kafka; the
shell feeds it bytes, then drains the effects it queued (dead letters, alerts, audit records)
and hands them to its sinks. Every input event is accounted for exactly once::

    events_in == placements + outcomes + duplicates + rejected

>>> core = AuditCore(CoreConfig(evaluate_every=10))
>>> core.process(b'not json')
>>> core.process(b'{"event_type": "placement", "schema_version": 1, "decision_id": "d-1",'
...              b' "job_id": "j-1", "decided_at": "2026-11-02T08:15:00Z",'
...              b' "attributes": {"team": "a"}, "decision": {"action": "place", "tier": "spot"}}')
>>> effects = core.drain()
>>> [d.reason for d in effects.dead_letters], core.placements, core.rejected
(['invalid_json'], 1, 1)
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, TypeVar

import msgspec

from detectors.alerts import Alert, AlertBook, AlertKey, AlertKind, Where
from detectors.audit_work import Explain, Learn, LearnOutcome, WorkItem
from detectors.coincidence import SamePopulation, promoted
from detectors.config import CoreConfig
from detectors.cusum import threshold_for
from detectors.detector import CoreDetector, Edge, Fire
from detectors.events import UNSET, Outcome, Placement, Rejection, decode_event, held_bytes
from detectors.findings import resolved_alert, restart_resolution
from detectors.groups import RECENT, AttributeAdmission, EquityLedger, GroupStats, wait_bucket
from detectors.history import History, HistoryRecord
from detectors.ingest import OutcomeJoiner, RecentIds
from detectors.registry import DETECTORS, alert_kinds
from detectors.requeue import REQUEUE_CAPACITY, RequeueClock
from detectors.sampler import AuditSampler
from detectors.sequencer import EventTimeSequencer

_T = TypeVar("_T")

__all__ = ["AuditContext", "AuditCore", "DeadLetter", "Effects"]

_FORECAST_STATUSES: Final = frozenset({"succeeded", "timeout"})
_RING: Final = RECENT - 1



def _merged(parts: Iterable[tuple[str, dict[str, _T]]]) -> dict[str, _T]:
    """Detectors' named parts as one mapping; a name two detectors give is an error."""
    out: dict[str, _T] = {}
    owner: dict[str, str] = {}
    for detector, part in parts:
        for key, value in part.items():
            if key in owner:
                raise ValueError(f"{key!r} is given by detectors {owner[key]!r} and "
                                 f"{detector!r}")
            owner[key] = detector
            out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected input: where it was, why, and its original bytes."""

    event_index: int
    reason: str
    detail: str
    raw: bytes
    source: str = ""
    """The shell's name for where it came from (a file, ``kafka:TOPIC/PARTITION@OFFSET``)."""


@dataclass(frozen=True, slots=True)
class AuditContext:
    """What an audit record must name to be reproducible (supplied by the shell)."""

    config_hash: str = ""
    versions: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class Effects:
    """Effects queued since the last :meth:`AuditCore.drain`, in order."""

    dead_letters: list[DeadLetter] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    """Alert edges in the order they happened: ``firing`` and ``resolved``."""
    audit_work: list[WorkItem] = field(default_factory=list)
    """Deep-audit work in stream order: what the shadow model learns and what it explains."""
    history: list[HistoryRecord] = field(default_factory=list)
    """History windows closed (:mod:`detectors.history`), in event-time order."""


class AuditCore:
    """Decode, deduplicate, join, track equity, sample audits, raise alerts."""

    def __init__(self, config: CoreConfig, context: AuditContext | None = None) -> None:
        self.config = config
        self.context = context or AuditContext()
        self.ledger = EquityLedger(
            config.attributes, config.attribute_pairs, config.max_groups_per_attribute,
            config.max_attributes, AttributeAdmission(
                config.attribute_min_events, config.attribute_min_share,
                config.attribute_max_key_length, max(64, 4 * config.max_attributes)))
        self.joiner: OutcomeJoiner[tuple[list[GroupStats], Placement, bool], Outcome] = \
            OutcomeJoiner(config.orphan_wait_s, config.placement_ttl_s, config.join_capacity,
                          config.join_max_mb << 20)
        self.alert_book = AlertBook()
        self.requeue = RequeueClock(REQUEUE_CAPACITY)
        self.placed_wait: tuple[int, float] | None = None
        """The placement being processed: its job's priority and queue wait, for a ``place``
        decision stating both (a preempted job's counted from its preemption,
        :mod:`detectors.requeue`), else None."""
        self._placement_ids = RecentIds(config.dedup_horizon)
        self._outcome_ids = RecentIds(config.dedup_horizon)
        self.detectors: dict[str, CoreDetector] = {
            name: spec.make(config) for name, spec in DETECTORS.items()}
        """Every detector of :data:`detectors.registry.DETECTORS`, built from ``config``, in
        the order they are evaluated (:mod:`detectors.detector`)."""
        self.alert_kinds: tuple[AlertKind, ...] = alert_kinds(DETECTORS)
        """The alert kinds those detectors raise."""
        self._owner = {kind.kind: detector for detector in self.detectors.values()
                       for kind in type(detector).kinds}
        hooked = [(d, type(d).hooks()) for d in self.detectors.values()]
        self._placement_hooks = [d.on_placement for d, hooks in hooked if "on_placement" in hooks]
        self._outcome_hooks = [d.on_outcome for d, hooks in hooked if "on_outcome" in hooks]
        self._evaluate_hooks = [d.evaluate for d, hooks in hooked if "evaluate" in hooks]
        self.family_threshold = math.nan
        """The CUSUM threshold every sequential watch was last tested against (the false-alarm
        budget shared by all of them; NaN before the first evaluation)."""
        self._sampler = AuditSampler(config.audit_sample_rate, config.audit_sample_key,
                                     config.audit_always_overrides, config.shadow_train_rate,
                                     config.audit_open_alert_rate)
        self._draw_floor = max(config.audit_sample_rate, config.audit_open_alert_rate)
        """Draws at or above this are audited only for an override or a cost."""
        self._alerted_groups: list[GroupStats] = []
        self._alerted_version = -1
        self._preferred = frozenset(config.preferred_tiers)
        self._effects = Effects()
        self.sequencer = EventTimeSequencer(config.reorder_lateness_s, config.outcome_settle_s,
                                            config.reorder_capacity, config.max_clock_jump_s,
                                            config.reorder_max_mb << 20)
        """Puts :meth:`offer`'s events in event-time order (:mod:`detectors.sequencer`)."""
        self._sources: dict[int, str] = {}
        """Where each buffered undecodable event came from, by arrival tag."""
        self._decoded = 0
        """Decoded events applied (the evaluation cadence counts these, not rejected ones,
        whose place in the order depends on the partitioning)."""
        self.events_in = 0
        self.placements = 0
        self.outcomes = 0
        self.duplicates = 0
        self.rejected = 0
        self.rejected_by_reason: dict[str, int] = {}
        self.joined = 0
        self.orphaned_outcomes = 0
        self.audited = 0
        self._carried: list[Alert] = []
        self.alerts_closed_on_restart = 0
        """Alerts an earlier run left open, resolved by this one (:meth:`carry_over`)."""
        self._same = SamePopulation(config.coincide_overlap)
        """Alerts reported inside another open alert because their groups coincide."""
        self.watermark = float("-inf")
        self._jump: float | None = None
        self.clock_outliers = 0
        self._last: Where | None = None
        """The latest placement: periodic findings are reported on it."""
        self.history = History(config.history_window_s) if config.history_window_s else None
        """Windows of what each group received, for the weekly report (None: off)."""
        self._history_end = math.inf
        """When the open history window closes (infinite with history off)."""

    @property
    def overrides_applied(self) -> int:
        """Placements that carried a manual override (0 without the override detector)."""
        return self.counters().get("overrides_applied", 0)

    @property
    def overrides_expired(self) -> int:
        """Of those, placements whose override was past its expiry or maximum age."""
        return self.counters().get("overrides_expired", 0)

    def counters(self) -> dict[str, int]:
        """Every detector's monotonic counts, by name."""
        return _merged((name, d.counters()) for name, d in self.detectors.items())

    def summary_sections(self) -> dict[str, object]:
        """What the detectors add to ``summary.json``, in registry order (a section named by
        two detectors is an error)."""
        return _merged((name, d.summary()) for name, d in self.detectors.items())

    @property
    def alerts_by_kind(self) -> dict[str, int]:
        """Alerts fired, by kind."""
        return self.alert_book.fired_by_kind

    @property
    def resolved_by_kind(self) -> dict[str, int]:
        """Alerts resolved, by kind (not counting those closed on a restart)."""
        return self.alert_book.resolved_by_kind

    @property
    def alerts_fired(self) -> int:
        return sum(self.alert_book.fired_by_kind.values())

    @property
    def alerts_resolved(self) -> int:
        return sum(self.alert_book.resolved_by_kind.values())

    @property
    def last_at(self) -> dt.datetime | None:
        """Decision time of the latest placement."""
        return None if self._last is None else self._last.at

    # -- input ---------------------------------------------------------------------------

    def offer(self, raw: bytes, partition: int = 0, source: str = "") -> None:
        """Take one input event from ``partition`` (0 for a file) and apply, in event-time
        order, every event the sequencer releases (never raises on bad input).

        ``source`` names where it came from, for its dead letter if it is rejected. An event's
        ``event_index`` is its arrival position: the count of offers before it.
        """
        event = decode_event(raw)
        sequencer = self.sequencer
        if isinstance(event, Rejection) and source:
            self._sources[sequencer.offered] = source
        sequencer.offer(event, raw, partition)
        for tag, released, body in sequencer.ready():
            self._apply(released, body, tag)

    def process(self, raw: bytes) -> None:
        """Apply one input event at once, in the order given (no sequencing: tests and
        callers that order their input themselves; do not mix with :meth:`offer`)."""
        self._apply(decode_event(raw), raw, self.events_in)

    def _apply(self, event: Placement | Outcome | Rejection, raw: bytes, index: int) -> None:
        """Account for one input event."""
        self.events_in += 1
        if isinstance(event, Placement):
            if self._placement_ids.seen_or_add(event.decision_id):
                self.duplicates += 1
            else:
                self._on_placement(event, raw, index)
        elif isinstance(event, Outcome):
            if self._outcome_ids.seen_or_add(event.decision_id):
                self.duplicates += 1
            else:
                self._on_outcome(event, index, held_bytes(event, raw))
        else:
            self._reject(event, raw, index)
            return
        self._decoded += 1
        if self._decoded % self.config.evaluate_every == 0:
            self.evaluate()

    def _advance(self, ts: float) -> None:
        """Move the event-time watermark; one event far ahead of it alone does not.

        An event more than ``max_clock_jump_s`` ahead is held as a candidate; the watermark
        jumps only when the next event is that far ahead too (a real gap in the stream, not
        one bad clock). A candidate not confirmed is counted in :attr:`clock_outliers`.
        """
        mark = self.watermark
        if ts - mark <= self.config.max_clock_jump_s or mark == float("-inf"):
            if self._jump is not None:
                self._jump = None
                self.clock_outliers += 1
            if ts > mark:
                self.watermark = ts
                if mark == float("-inf") and self.history is not None:
                    self.history.start(ts)
                    self._history_end = self.history.window_end
        elif self._jump is None:
            self._jump = ts
        else:
            self.watermark = min(self._jump, ts)
            self._jump = None
        if self.watermark >= self._history_end:
            # the event being applied belongs to the new window
            history = self.history
            assert history is not None
            self._effects.history.extend(history.roll(self.watermark, self.ledger,
                                                      self._stream_totals(1),
                                                      self.rejected_by_reason))
            self._history_end = history.window_end

    def _stream_totals(self, current: int) -> dict[str, int]:
        """The stream's counters for a history window, less the ``current`` event."""
        return {"events_in": self.events_in - current, "placements": self.placements,
                "outcomes": self.outcomes, "duplicates": self.duplicates,
                "rejected": self.rejected, "joined": self.joined,
                "orphaned_outcomes": self.orphaned_outcomes, "audited": self.audited,
                "late_events": self.sequencer.late, "clock_outliers": self.clock_outliers}

    def _reject(self, rejection: Rejection, raw: bytes, index: int) -> None:
        self.rejected += 1
        reason = rejection.reason
        self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1
        self._effects.dead_letters.append(DeadLetter(index, reason, rejection.detail, raw,
                                                     self._sources.pop(index, "")))

    def _on_placement(self, event: Placement, raw: bytes, index: int) -> None:
        if self._carried:
            self._close_carried(Where(event.decision_id, index, event.decided_at))
        decided_at = event.decided_at
        ts = decided_at.timestamp()
        self._advance(ts)
        self.placements += 1
        decision = event.decision
        action = decision.action
        tiered = action == "place" and decision.tier is not UNSET
        preferred = tiered and decision.tier in self._preferred
        job = event.job
        priority = None if job is UNSET or job.priority is UNSET else job.priority
        wait = None
        requeue = self.requeue
        if action == "place":
            wait = event.queue_wait_s
            since = requeue.placed(event.job_id) if requeue.at else None
            if since is not None:  # placed again after a preemption (detectors.requeue)
                wait = max(ts - since if wait is None else min(wait, ts - since), 0.0)
        elif action == "preempt":
            requeue.preempted(event.job_id, ts)
        elif action == "reject" and requeue.at:
            requeue.placed(event.job_id)
        self.placed_wait = None if wait is None or priority is None else (priority, wait)
        deserving = priority is not None and priority >= self.config.deserving_priority
        generation = decision.hardware_generation if action == "place" else UNSET
        unit_price = None
        spend = None
        if action == "place":
            price = decision.price_per_hour
            if price is not UNSET and job is not UNSET:
                requested = job.requested
                if requested is not UNSET and requested.cpu is not UNSET and requested.cpu > 0:
                    unit_price = price / requested.cpu
            if not tiered:
                pass  # spend is counted by tier (cheap or premium) only
            elif decision.predicted_cost is not UNSET:
                spend = decision.predicted_cost
            elif price is not UNSET and decision.predicted_runtime_s is not UNSET:
                spend = price * decision.predicted_runtime_s / 3600.0
        groups = self.ledger.resolve(event.attributes)
        pending = self.ledger.pending_groups
        # every group the decision counts in: those of keys awaiting admission too, which
        # the detectors do not see (detectors.groups.EquityLedger)
        counted = groups + pending if pending else groups
        bucket = 0 if wait is None else wait_bucket(wait)
        for stats in counted:
            stats.recent[stats.decisions & _RING] = index
            stats.decisions += 1
            if action == "place":
                stats.placed += 1
                if tiered:
                    stats.tiered += 1
                    if preferred:
                        stats.preferred += 1
                        if spend is not None:
                            stats.cheap_spend_n += 1
                            stats.cheap_spend_sum += spend
                    elif spend is not None:
                        stats.premium_spend_n += 1
                        stats.premium_spend_sum += spend
                    if deserving:
                        stats.hp_tiered += 1
                        if preferred:
                            stats.hp_preferred += 1
                if generation is not UNSET:
                    stats.hw_n += 1
                    if generation < self.config.old_hardware_below:
                        stats.hw_old += 1
                if unit_price is not None:
                    stats.unit_price_n += 1
                    stats.unit_price_sum += unit_price
            elif action == "queue":
                stats.queued += 1
            elif action == "preempt":
                stats.preempted += 1
            else:
                stats.rejected += 1
            if wait is not None:
                stats.wait_n += 1
                stats.wait_sum += wait
                stats.wait_hist[bucket] += 1
        where = Where(event.decision_id, index, decided_at)
        self._last = where
        config = self.config
        decision_id = event.decision_id
        draw, trains = self._sampler.draws(decision_id)
        held = held_bytes(event, raw)
        if trains:
            self._effects.audit_work.append(Learn.of(event, self.ledger.audited_key_list, held))
        waiting = self.joiner.add_placement(decision_id, (counted, event, trains), ts, held)
        if waiting is not None:
            self._apply_outcome(counted, event, trains, waiting, where)
        override = event.override
        if override is not UNSET and self.history is not None:
            self.history.override(override.by or "", override.reason or "",
                                  None if override.expires_at is UNSET
                                  else override.expires_at.timestamp())
        for hook in self._placement_hooks:
            edges = hook(event, groups, where, self)
            if edges is not None:
                self._apply_edges(edges, where)
        costly = (config.audit_cost_threshold > 0 and decision.predicted_cost is not UNSET
                  and decision.predicted_cost >= config.audit_cost_threshold)
        if draw >= self._draw_floor and override is UNSET and not costly:
            return  # the common case: no reason to audit, nothing more to look at
        # open alerts matter only to a draw below their higher rate
        alerted = (self._alerted_on(groups) if draw < config.audit_open_alert_rate else None)
        reasons = self._sampler.reasons_for(draw, override is not UNSET, costly, bool(alerted))
        if reasons:
            self._audit(event, raw, index, reasons,
                        draw if draw < 1.0 else self._sampler.draw(decision_id), groups,
                        self._alerted_on(groups) if alerted is None else alerted)

    def _on_outcome(self, event: Outcome, index: int, size: int = 0) -> None:
        self._advance(event.finished_at.timestamp())
        self.outcomes += 1
        held = self.joiner.add_outcome(event.decision_id, event, self.watermark, size)
        if held is not None:
            self._apply_outcome(held[0], held[1], held[2], event,
                                Where(event.decision_id, index, event.finished_at))

    def _apply_outcome(self, groups: list[GroupStats], placement: Placement, trained: bool,
                       outcome: Outcome, where: Where) -> None:
        self.joined += 1
        met = outcome.deadline_met
        if trained and met is not UNSET:
            self._effects.audit_work.append(LearnOutcome(placement.decision_id, met))
        residuals = self._residuals(placement, outcome)
        costs = None
        actual, predicted = outcome.actual_cost, placement.decision.predicted_cost
        if residuals and residuals[-1][0] == "cost" and actual is not UNSET \
                and predicted is not UNSET:
            costs = (actual, predicted)
        for stats in groups:
            stats.outcomes += 1
            if met is not UNSET:
                stats.deadline_n += 1
                if not met:
                    stats.deadline_missed += 1
            if costs is not None:
                stats.cost_actual_sum += costs[0]
                stats.cost_predicted_sum += costs[1]
        if self._outcome_hooks:
            seen = groups if all(s.tracked for s in groups) else [s for s in groups if s.tracked]
            for hook in self._outcome_hooks:
                hook(seen, placement, outcome, residuals)

    @staticmethod
    def _residuals(placement: Placement, outcome: Outcome) -> list[tuple[str, float]]:
        """log(actual / predicted) for runtime and cost, where both are known and positive."""
        if outcome.status not in _FORECAST_STATUSES:
            return []
        out = []
        decision = placement.decision
        actual, predicted = outcome.actual_runtime_s, decision.predicted_runtime_s
        if actual is not UNSET and predicted is not UNSET and actual > 0 and predicted > 0:
            out.append(("runtime", math.log(actual) - math.log(predicted)))
        actual, predicted = outcome.actual_cost, decision.predicted_cost
        if actual is not UNSET and predicted is not UNSET and actual > 0 and predicted > 0:
            out.append(("cost", math.log(actual) - math.log(predicted)))
        return out

    # -- findings ------------------------------------------------------------------------

    def _fire(self, key: AlertKey, alert: Alert, where: Where) -> None:
        """Open an alert and queue its firing edge (the caller checked it was not open),
        unless its group is the same decisions as one alerted on for the same reason in this
        batch (:class:`~detectors.coincidence.SamePopulation`)."""
        if self._same.absorb(key, alert, self.ledger, self.alert_book, self._effects.alerts):
            return
        self.alert_book.fire(key, alert, where.at.timestamp())
        self._effects.alerts.append(alert)

    @property
    def alerts_merged(self) -> int:
        """Alerts reported inside another open alert because their groups coincide."""
        return self._same.merged

    def _resolve(self, key: AlertKey, value: float, where: Where, why: str) -> None:
        """Close an alert if it is open and queue its resolved edge; a group reported inside
        it whose own condition still holds fires its own alert now."""
        held = self.alert_book.resolve(key)
        if held is None:
            self._same.forget(key)  # a merged group's own condition cleared
            return
        fired, fired_at = held
        self._effects.alerts.append(resolved_alert(fired, fired_at, value, where, why))
        for alias, alert in self._same.released(key):
            owner = self._owner.get(alias[0])
            if owner is not None and owner.still_alarmed(alias, self.ledger):
                self._fire(alias, promoted(alert, where, key), where)

    def _apply_edges(self, edges: Iterable[Edge], where: Where) -> None:
        """Apply a detector's edges as they come: open what is not open, resolve what is."""
        book = self.alert_book
        for edge in edges:
            if isinstance(edge, Fire):
                if not book.is_open(edge.key):
                    self._fire(edge.key, edge.alert, where)
            else:
                self._resolve(edge.key, edge.value, where, edge.why)

    def evaluate(self) -> None:
        """Expire joins, refresh references and thresholds, run the standing checks.

        Called every ``evaluate_every`` events (deterministic in the event count).
        """
        orphans = self.joiner.advance(self.watermark)
        self.orphaned_outcomes += len(orphans)
        if self._last is None:
            return
        where = self._last
        # one false-alarm budget for every sequential detector (docs/alerts.md)
        watches = max(sum(d.watches for d in self.detectors.values()), 1)
        self.family_threshold = threshold_for(watches / self.config.false_alarms_per_million
                                              * 1e6 / self.config.evaluate_every)
        for evaluate in self._evaluate_hooks:
            self._apply_edges(evaluate(self, where), where)

    def carry_over(self, alerts: list[Alert]) -> None:
        """Alerts an earlier run left open in the same output (a restarted service).

        This core's detectors start afresh and know nothing of them, so they are resolved on
        its first placement, before anything can fire again, each with a resolved edge that
        says why; a condition that still holds fires again as a new episode once the
        detectors have seen it. They are counted
        in :attr:`alerts_closed_on_restart`, not in this run's fired and resolved counts.
        """
        self._carried.extend(a for a in alerts if a.state == "firing")

    def _close_carried(self, where: Where) -> None:
        for fired in self._carried:
            try:
                fired_at = dt.datetime.fromisoformat(fired.at).timestamp()
            except ValueError:
                fired_at = where.at.timestamp()
            self.alerts_closed_on_restart += 1
            edge = resolved_alert(fired, fired_at, fired.value, where, restart_resolution(fired))
            self._effects.alerts.append(msgspec.structs.replace(
                edge, details={**edge.details, "closed_on_restart": True}))
        self._carried = []

    def finish(self) -> None:
        """End of input: every buffered event applied, a final evaluation; outcomes still
        waiting are orphaned."""
        for tag, event, raw in self.sequencer.flush():
            self._apply(event, raw, tag)
        self.ledger.admit_at_end()
        self.evaluate()
        self.orphaned_outcomes += len(self.joiner.drain_outcomes())
        if self.history is not None:
            self._effects.history.extend(self.history.flush(self.ledger, self._stream_totals(0),
                                                            self.rejected_by_reason))

    # -- audit ---------------------------------------------------------------------------

    def _alerted_on(self, groups: list[GroupStats]) -> list[AlertKey]:
        """Open alerts on any of these groups (each group's list is refreshed on change)."""
        book = self.alert_book
        if book.version != self._alerted_version:
            for stats in self._alerted_groups:
                stats.alerts = ()
            by_group: dict[tuple[str, str], list[AlertKey]] = {}
            for key in book.open_keys:
                if key[1] is not None and key[2] is not None:
                    by_group.setdefault((key[1], key[2]), []).append(key)
            self._alerted_groups = []
            for (attribute, name), keys in by_group.items():
                held = self.ledger.groups.get(attribute, {}).get(name)
                if held is not None:
                    held.alerts = tuple(keys)
                    self._alerted_groups.append(held)
            self._alerted_version = book.version
        if not self._alerted_groups:
            return []
        return [key for stats in groups for key in stats.alerts]

    def _audit(self, event: Placement, raw: bytes, index: int, reasons: tuple[str, ...],
               draw: float, groups: list[GroupStats], alerted: list[AlertKey]) -> None:
        """Queue a deep audit: the event plus the state only the core knows right now."""
        self.audited += 1
        state = [(s.attribute, s.name, s.decisions, s.placed, s.preferred, s.tiered)
                 for s in groups]
        self._effects.audit_work.append(Explain.of(
            event, raw, index, reasons, draw, self.ledger.audited_key_list, state,
            tuple((k[0], k[1] or "", k[2] or "", k[3]) for k in alerted) if alerted else ()))

    # -- output --------------------------------------------------------------------------

    def drain(self) -> Effects:
        """Hand over the effects queued since the last call."""
        effects, self._effects = self._effects, Effects()
        return effects
