"""The core's configuration: plain, frozen, validated values (no files, no environment).

``streams.settings`` reads TOML and ``PLACEWATCH_*`` variables and builds this object; the core
never looks anywhere else. Every field is documented in docs/configuration.md.

>>> CoreConfig(min_group_support=0)
Traceback (most recent call last):
...
ValueError: min_group_support: must be an integer >= 1, got 0
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

__all__ = ["DEFAULT_SAMPLE_KEY", "CoreConfig"]


def _require(ok: bool, key: str, allowed: str, value: object) -> None:
    if not ok:
        raise ValueError(f"{key}: must be {allowed}, got {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _str_tuple(value: object) -> bool:
    return isinstance(value, tuple) and all(isinstance(v, str) and v for v in value)


def _river_problem(value: object) -> str:
    """What is wrong with a River ``drift_detector`` spec, or ``""``."""
    from detectors.river_cycle import parse_detector

    if not isinstance(value, str):
        return "not a string"
    try:
        parse_detector(value)
    except ValueError as exc:
        return str(exc)
    return ""


DEFAULT_SAMPLE_KEY = "placewatch-audit-v1"
"""The public default ``audit_sample_key`` (a live run logs a warning while it is in use)."""


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """Every knob of the processing core, with production defaults."""

    attributes: tuple[str, ...] | None = None
    """Audited attribute keys; None audits the keys admitted as they are seen (the three
    ``attribute_*`` settings below), up to ``max_attributes``."""
    max_attributes: int = 8
    attribute_min_events: int = 20
    """Without ``attributes``: placements a key must be on before it is audited."""
    attribute_min_share: float = 0.05
    """Without ``attributes``: share of the placements since a key was first seen that it
    must be on before it is audited."""
    attribute_max_key_length: int = 64
    """Without ``attributes``: longer keys are never audited (counted)."""
    attribute_pairs: tuple[tuple[str, str], ...] = ()
    """Pairs of attribute keys audited together (intersectional groups)."""
    max_groups_per_attribute: int = 64
    """Named groups tracked per attribute; more values share the ``__other__`` group."""
    min_group_support: int = 30
    """Decisions (or outcomes, for outcome rates) a group needs before it is compared."""
    preferred_tiers: tuple[str, ...] = ("spot", "reserved")
    """``decision.tier`` values that count as the cheap or preferred resource."""
    deserving_priority: int = 2
    """Jobs at or above this ``job.priority`` deserve cheap compute most (equal opportunity)."""
    old_hardware_below: int = 6
    """``decision.hardware_generation`` below this counts as old hardware."""
    disparity_ratio_threshold: float = 0.8
    """Parity ratio below which a standing disparity is reported (four-fifths rule)."""
    wait_gap_limit: float = 0.12
    """How much longer (relative, 0.12 = 12%) a group's mean queue wait may be than the rest of
    its attribute's groups' in the same class (priority and job class) before the
    ``scheduling_equity`` alert fires, with confidence (the seed's 12%)."""
    wait_gap_limits: tuple[tuple[str, float], ...] = ()
    """Per-attribute limits in place of ``wait_gap_limit`` (TOML: ``{team = 0.10}``)."""
    wait_gap_window: int = 100
    """Batches (of ``evaluate_every`` events) the scheduling-equity comparison looks back."""
    confidence: float = 0.95
    """Confidence level of the intervals that gate disparity findings."""
    evaluate_every: int = 500
    """Events between two evaluations of the standing disparity checks."""
    history_window_s: int = 3600
    """Seconds of event time per history window (:mod:`detectors.history`, the weekly
    report's input); must divide a day. 0 turns history off."""
    false_alarms_per_million: float = 1.0
    """Budget of false drift alarms per million events, for all sequential detectors together."""
    drift_warmup: int = 400
    """Observations of a rate a group needs before its reference ratio is learned."""
    drift_min_batches: int = 5
    """Evaluations a group's warm-up spans at least (to measure its burstiness)."""
    drift_detector: str = "cusum"
    """Sequential test of the equity-drift watches: ``cusum`` (placewatch's, within the
    false-alarm budget) or River's ``adwin`` or ``page_hinkley`` on the same contrast, with
    River's defaults or some of its settings (``page_hinkley:threshold=20,delta=0.5``)."""
    drift_prior: float = 0.0
    """Pseudo-observations of parity that the reference ratio is shrunk with."""
    forecast_warmup: int = 100
    """Residuals a group needs before its forecast reference (median, MAD) is set."""
    wait_drift_warmup: int = 150
    """Queued jobs (wait > 0) a group needs before its standing among its class is learned."""
    wait_drift_shift: float = 0.15
    """Rise in the chance that a group's queued job waits longer than one of the rest of its
    class (0.5 when it waits like them) that the queue-wait watch is tuned to find."""
    trend_window: int = 300
    """Group observations after a drift alarm that the amplification test compares."""
    trend_alpha: float = 0.01
    """One-sided significance of the amplification test."""
    trend_min_growth: float = 0.05
    """Least widening of the gap, after the alarm against at detection, that is amplification."""
    dedup_horizon: int = 250_000
    """Distinct decision ids remembered for duplicate detection (per event type)."""
    orphan_wait_s: float = 3600.0
    """Event-time seconds an outcome waits for its placement before it counts as orphaned."""
    max_clock_jump_s: float = 3 * 86400.0
    """How far one event may move event time ahead alone (a second one must confirm more)."""
    placement_ttl_s: float = 30 * 86400.0
    """Event-time seconds a placement waits for its outcome."""
    join_capacity: int = 200_000
    """Placements held at most while waiting for their outcome (outcomes alike)."""
    join_max_mb: int = 256
    """MiB the placements waiting for their outcome may take, at most (outcomes alike; each
    charged :func:`~detectors.events.held_bytes`)."""
    reorder_lateness_s: float = 1.0
    """Event-time seconds an event may arrive behind the latest one of its partition and still
    be put in its place (:mod:`detectors.sequencer`); every event waits this long."""
    outcome_settle_s: float = 600.0
    """Event-time seconds after a job ends that its outcome is applied, so outcomes reported up
    to this late are processed in the same order however the input is partitioned."""
    reorder_capacity: int = 100_000
    """Events the sequencer may hold; beyond it the oldest is released early (counted)."""
    reorder_max_mb: int = 256
    """MiB the sequencer's buffered events may take, at most (each charged
    :func:`~detectors.events.held_bytes` plus its bytes); beyond it the oldest is processed
    early and counted, as beyond ``reorder_capacity``."""
    override_max_age_s: float = 86400.0
    """Age after which an override without ``expires_at`` is reported as not expired."""
    override_resolve_after_s: float = 3600.0
    """Event-time seconds without a placement carrying an expired override after which its
    ``override_expired`` alert may resolve (see :class:`~detectors.overrides.LiftedOverrides`
    for the arrival-order condition that must hold too)."""
    coincide_overlap: float = 0.95
    """Share of their latest decisions two groups of different attributes must have in common
    for the second's alert to be reported inside the first's (:mod:`detectors.coincidence`);
    above 1: never."""
    audit_sample_rate: float = 0.02
    """Fraction of decisions deep-audited (one in fifty)."""
    audit_sample_key: str = DEFAULT_SAMPLE_KEY
    """Key of the hash that picks audited decisions; set a private one in production."""
    audit_always_overrides: bool = True
    """Deep-audit every overridden decision in addition to the sampled ones."""
    audit_cost_threshold: float = 0.0
    """Deep-audit every decision whose forecast cost is at least this; 0 turns it off."""
    audit_open_alert_rate: float = 0.2
    """Fraction of decisions deep-audited (same keyed draw) in groups with an alert open; 0 off."""
    audit_redact_fields: tuple[str, ...] = ()
    """Dotted event fields (``override.reason``) replaced by ``[redacted]`` in audit records."""
    shadow_train_rate: float = 0.25
    """Fraction of placements (keyed hash) the shadow scheduler learns from."""
    shadow_min_examples: int = 200
    """Decisions the shadow model learns before its counterfactual answers are given."""
    shadow_max_features: int = 1024
    """Named feature columns of the shadow and deadline models, at most: later category
    values, attribute values and context keys share their family's overflow column."""
    audit_cpu_sizes: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
    """CPU requests a counterfactual may propose."""
    audit_memory_sizes_gb: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0,
                                                256.0)
    """Memory requests (GB) a counterfactual may propose."""
    audit_gpu_sizes: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0)
    """GPU requests a counterfactual may propose."""
    audit_deadline_extensions_h: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 24.0)
    """Deadline extensions (hours) a counterfactual may propose."""
    audit_max_changes: int = 3
    """Most inputs one counterfactual may change (sparsity)."""
    audit_alternatives: int = 3
    """Counterfactuals kept per question (diversity)."""

    def without_audits(self) -> CoreConfig:
        """The same configuration with every deep-audit feature off: no sampling, no
        stratified additions, no shadow-model training (detection is unchanged)."""
        return dataclasses.replace(self, audit_sample_rate=0.0, audit_always_overrides=False,
                                   audit_cost_threshold=0.0, audit_open_alert_rate=0.0,
                                   shadow_train_rate=0.0)

    def __post_init__(self) -> None:
        if self.attributes is not None:
            _require(_str_tuple(self.attributes), "attributes",
                     "a list of non-empty strings", self.attributes)
        _require(_is_int(self.max_attributes) and self.max_attributes >= 1,
                 "max_attributes", "an integer >= 1", self.max_attributes)
        for key in ("attribute_min_events", "attribute_max_key_length"):
            value = getattr(self, key)
            _require(_is_int(value) and value >= 1, key, "an integer >= 1", value)
        _require(_is_number(self.attribute_min_share) and 0 <= self.attribute_min_share <= 1,
                 "attribute_min_share", "a number in [0, 1]", self.attribute_min_share)
        _require(
            isinstance(self.attribute_pairs, tuple)
            and all(_str_tuple(p) and len(p) == 2 and p[0] != p[1] for p in self.attribute_pairs),
            "attribute_pairs", "a list of two-element lists of distinct attribute keys",
            self.attribute_pairs,
        )
        _require(_is_int(self.max_groups_per_attribute) and self.max_groups_per_attribute >= 1,
                 "max_groups_per_attribute", "an integer >= 1", self.max_groups_per_attribute)
        _require(_is_int(self.min_group_support) and self.min_group_support >= 1,
                 "min_group_support", "an integer >= 1", self.min_group_support)
        _require(_str_tuple(self.preferred_tiers) and len(self.preferred_tiers) > 0,
                 "preferred_tiers", "a non-empty list of tier names", self.preferred_tiers)
        _require(_is_number(self.disparity_ratio_threshold)
                 and 0 < self.disparity_ratio_threshold <= 1,
                 "disparity_ratio_threshold", "a number in (0, 1]",
                 self.disparity_ratio_threshold)
        _require(_is_number(self.wait_gap_limit) and self.wait_gap_limit > 0,
                 "wait_gap_limit", "a number > 0", self.wait_gap_limit)
        _require(isinstance(self.wait_gap_limits, tuple)
                 and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) and p[0]
                         and _is_number(p[1]) and p[1] > 0 for p in self.wait_gap_limits)
                 and len({p[0] for p in self.wait_gap_limits}) == len(self.wait_gap_limits),
                 "wait_gap_limits", "a table of attribute keys to numbers > 0",
                 self.wait_gap_limits)
        if self.attributes:  # keys admitted at run time cannot be checked in advance
            audited = {*self.attributes, *(f"{a}*{b}" for a, b in self.attribute_pairs)}
            unknown = sorted(k for k, _ in self.wait_gap_limits if k not in audited)
            _require(not unknown, "wait_gap_limits",
                     f"keys among the audited attributes {sorted(audited)} (pairs as "
                     f"first*second); unknown: {unknown}", self.wait_gap_limits)
        _require(_is_int(self.wait_gap_window) and self.wait_gap_window >= 10,
                 "wait_gap_window", "an integer >= 10 (batches)", self.wait_gap_window)
        _require(_is_number(self.confidence) and 0.5 <= self.confidence < 1,
                 "confidence", "a number in [0.5, 1)", self.confidence)
        _require(_is_number(self.false_alarms_per_million) and self.false_alarms_per_million > 0,
                 "false_alarms_per_million", "a number > 0", self.false_alarms_per_million)
        problem = "" if self.drift_detector == "cusum" else _river_problem(self.drift_detector)
        _require(not problem, "drift_detector", "cusum, adwin or page_hinkley, optionally with "
                 "River's settings (adwin:delta=0.0002, page_hinkley:threshold=20,delta=0.5): "
                 f"{problem}", self.drift_detector)
        _require(_is_number(self.drift_prior) and self.drift_prior >= 0,
                 "drift_prior", "a number >= 0", self.drift_prior)
        _require(_is_int(self.drift_min_batches) and self.drift_min_batches >= 2,
                 "drift_min_batches", "an integer >= 2", self.drift_min_batches)
        _require(_is_int(self.forecast_warmup) and self.forecast_warmup >= 5,
                 "forecast_warmup", "an integer >= 5", self.forecast_warmup)
        _require(_is_int(self.wait_drift_warmup) and self.wait_drift_warmup >= 5,
                 "wait_drift_warmup", "an integer >= 5", self.wait_drift_warmup)
        _require(_is_number(self.wait_drift_shift) and 0 < self.wait_drift_shift < 0.5,
                 "wait_drift_shift", "a number in (0, 0.5)", self.wait_drift_shift)
        _require(_is_number(self.trend_alpha) and 0 < self.trend_alpha < 0.5,
                 "trend_alpha", "a number in (0, 0.5)", self.trend_alpha)
        _require(_is_number(self.trend_min_growth) and self.trend_min_growth >= 0,
                 "trend_min_growth", "a number >= 0", self.trend_min_growth)
        _require(_is_int(self.history_window_s) and self.history_window_s >= 0
                 and (self.history_window_s == 0 or (self.history_window_s >= 60
                                                     and 86400 % self.history_window_s == 0)),
                 "history_window_s", "0 (off) or seconds >= 60 that divide a day (86400)",
                 self.history_window_s)
        for key in ("deserving_priority", "old_hardware_below"):
            value = getattr(self, key)
            _require(_is_int(value), key, "an integer", value)
        for key in ("evaluate_every", "dedup_horizon", "join_capacity", "join_max_mb",
                    "reorder_max_mb", "drift_warmup",
                    "trend_window", "reorder_capacity"):
            value = getattr(self, key)
            _require(_is_int(value) and value >= 1, key, "an integer >= 1", value)
        for key in ("orphan_wait_s", "override_max_age_s", "max_clock_jump_s",
                    "reorder_lateness_s", "outcome_settle_s"):
            value = getattr(self, key)
            _require(_is_number(value) and value >= 0, key, "a number of seconds >= 0", value)
        _require(_is_number(self.override_resolve_after_s) and self.override_resolve_after_s > 0,
                 "override_resolve_after_s", "a number of seconds > 0",
                 self.override_resolve_after_s)
        _require(_is_number(self.coincide_overlap) and self.coincide_overlap >= 0.5,
                 "coincide_overlap", "a share >= 0.5 (above 1 turns it off)",
                 self.coincide_overlap)
        _require(_is_number(self.placement_ttl_s) and self.placement_ttl_s > 0,
                 "placement_ttl_s", "a number of seconds > 0", self.placement_ttl_s)
        _require(_is_number(self.audit_sample_rate) and 0 <= self.audit_sample_rate <= 1,
                 "audit_sample_rate", "a number in [0, 1]", self.audit_sample_rate)
        _require(isinstance(self.audit_sample_key, str) and len(self.audit_sample_key) > 0,
                 "audit_sample_key", "a non-empty string", "<redacted>")
        _require(isinstance(self.audit_always_overrides, bool), "audit_always_overrides",
                 "true or false", self.audit_always_overrides)
        _require(_is_number(self.audit_open_alert_rate) and 0 <= self.audit_open_alert_rate <= 1,
                 "audit_open_alert_rate", "a number in [0, 1]", self.audit_open_alert_rate)
        _require(_is_number(self.audit_cost_threshold) and self.audit_cost_threshold >= 0,
                 "audit_cost_threshold", "a number >= 0", self.audit_cost_threshold)
        _require(isinstance(self.audit_redact_fields, tuple)
                 and all(isinstance(f, str) and f and "" not in f.split(".")
                         for f in self.audit_redact_fields),
                 "audit_redact_fields", "a list of dotted field names such as override.reason",
                 self.audit_redact_fields)
        _require(_is_number(self.shadow_train_rate) and 0 <= self.shadow_train_rate <= 1,
                 "shadow_train_rate", "a number in [0, 1]", self.shadow_train_rate)
        _require(_is_int(self.shadow_min_examples) and self.shadow_min_examples >= 1,
                 "shadow_min_examples", "an integer >= 1", self.shadow_min_examples)
        _require(_is_int(self.shadow_max_features) and self.shadow_max_features >= 1,
                 "shadow_max_features", "an integer >= 1", self.shadow_max_features)
        for key in ("audit_cpu_sizes", "audit_memory_sizes_gb", "audit_gpu_sizes",
                    "audit_deadline_extensions_h"):
            ladder = getattr(self, key)
            _require(isinstance(ladder, tuple) and len(ladder) > 0
                     and all(_is_number(v) and v >= 0 for v in ladder)
                     and list(ladder) == sorted(set(ladder)),
                     key, "a non-empty ascending list of distinct numbers >= 0", ladder)
        _require(_is_int(self.audit_max_changes) and 1 <= self.audit_max_changes <= 5,
                 "audit_max_changes", "an integer in 1..5", self.audit_max_changes)
        _require(_is_int(self.audit_alternatives) and self.audit_alternatives >= 1,
                 "audit_alternatives", "an integer >= 1", self.audit_alternatives)
