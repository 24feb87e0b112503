"""The three Grafana dashboards, built with grafana-foundation-sdk from the one module of metric
names (streams/metric_names.py), and written as JSON into dashboards/json/.

    python -m dashboards.build            # regenerate dashboards/json/*.json
    python -m dashboards.build --check    # exit 1 if the committed JSON differs

- **SRE on-call** (``placewatch-sre``): is placewatch healthy and what is firing.
- **Leadership** (``placewatch-leadership``): the equity scorecard, its trend, the largest gaps,
  what cheap compute costs each group, open findings and remediation age.
- **Reviewer** (``placewatch-reviewer``): sampled audits, forecast error and amplification by
  group, overrides.

Every panel has a unit, a description and, where a line matters, thresholds; alert panels link
to the runbooks. Template variables pick the Prometheus datasource, the audited attribute and
its groups, and (leadership) the comparison window of "week over week".
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders.bargauge import Panel as BarGauge
from grafana_foundation_sdk.builders.prometheus import Dataquery as Query
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.table import Panel as Table
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.common import DataSourceRef
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from streams import metric_names as m

__all__ = ["DASHBOARDS", "JSON_DIR", "PanelSpec", "build_all", "render"]

JSON_DIR: Final = Path(__file__).resolve().parent / "json"
RUNBOOKS: Final = "alerts/runbooks/"
_DS: Final = DataSourceRef(type_val="prometheus", uid="${datasource}")
_RATE: Final = "$__rate_interval"


@dataclass(frozen=True)
class PanelSpec:
    """One panel: what it shows, how, and why."""

    kind: str  # timeseries, stat, bargauge, table
    title: str
    description: str
    unit: str
    queries: Sequence[tuple[str, str]]  # (PromQL, legend)
    thresholds: Sequence[tuple[str, float | None]] = ()  # (colour, from value)
    runbooks: Sequence[str] = ()  # alert names whose runbooks the panel links to
    span: int = 12
    instant: bool = False
    minimum: float | None = None
    maximum: float | None = None
    no_value: str = ""  # shown instead of "No data" when the absence has a reason


@dataclass(frozen=True)
class DashboardSpec:
    uid: str
    title: str
    description: str
    rows: Sequence[tuple[str, Sequence[PanelSpec]]]
    variables: Sequence[str] = ("attribute", "group")
    compare: bool = False
    tags: Sequence[str] = field(default=("placewatch",))


_FOUR_FIFTHS: Final = (("red", None), ("green", 0.8))


def _increase(metric: str, tier: str = "", by: str = "") -> str:
    """``metric``'s increase over the comparison window for the chosen attribute (``tier``
    "cheap" or "premium", or both when empty), summed ``by`` group (named groups only: the
    ``__other__`` overflow is no group to price) or over every group."""
    match = 'attribute="$attribute"' + (f',tier="{tier}"' if tier else "")
    if by:
        return (f'sum by ({by}) (increase({metric}_total{{{match},group!="__other__"}}'
                f'[$compare]))')
    return f"sum(increase({metric}_total{{{match}}}[$compare]))"


def _priced(tier: str = "", by: str = "") -> str:
    """Placements with a tier and a price (spend) over the comparison window."""
    return _increase(m.GROUP_PRICED, tier, by)


def _mean_spend(tier: str) -> str:
    """Mean spend of one placement on ``tier``; no value when it had none in the window."""
    return f"{_increase(m.GROUP_SPEND, tier)} / ({_priced(tier)} > 0)"


# What one placement on a cheap tier saves against one on another tier, pooled over the
# attribute's groups and never negative (the report's max(0, premium - cheap)); no value when
# either kind had no priced placement in the window.
_SAVED_PER_PLACEMENT: Final = f'clamp_min({_mean_spend("premium")} - {_mean_spend("cheap")}, 0)'
_OWN_CHEAP: Final = f'({_priced("cheap", "group")} or {_priced(by="group")} * 0)'
# Cheap placements each group would have had at the other groups' share, beyond its own:
# (rest's cheap / rest's placements) x own placements - own cheap, at least 0; no value for a
# group with no other priced placements to compare with.
_SHORTFALL: Final = (
    f'clamp_min((scalar({_priced("cheap")} or vector(0)) - {_OWN_CHEAP}) / '
    f'((scalar({_priced()}) - {_priced(by="group")}) > 0) * {_priced(by="group")} - '
    f'{_OWN_CHEAP}, 0)')
_EXTRA_SPEND: Final = f"{_SHORTFALL} * on() group_left() {_SAVED_PER_PLACEMENT}"

SRE: Final = DashboardSpec(
    "placewatch-sre", "placewatch: SRE on-call",
    "Is placewatch healthy, is it keeping up, and what is firing now.",
    [
        ("Pipeline", [
            PanelSpec("timeseries", "Events in by kind",
                      "Input events per second by what became of them: placements, outcomes, "
                      "duplicates (applied once) and rejected (dead-lettered).", "ops",
                      [(f"sum by (kind) (rate({m.EVENTS}_total[{_RATE}]))", "{{kind}}")]),
            PanelSpec("timeseries", "Dead letters by reason",
                      "Rejected events per second by reason (docs/contract.md). Above 1% of "
                      "input for 10 minutes pages as PlacewatchDeadLetterRate.", "ops",
                      [(f"sum by (reason) (rate({m.DEAD_LETTERS}_total[{_RATE}]))",
                        "{{reason}}")], runbooks=["PlacewatchDeadLetterRate"]),
            PanelSpec("stat", "Seconds since the last batch",
                      "Wall-clock seconds since placewatch last processed events; 600 "
                      "(10 minutes) pages as PlacewatchStalled.", "s",
                      [(f"time() - max({m.LAST_BATCH_AT})", "idle")],
                      thresholds=[("green", None), ("orange", 120.0), ("red", 600.0)],
                      runbooks=["PlacewatchStalled"], span=6, instant=True),
            PanelSpec("stat", "Share of a core on the event path",
                      "Fraction of one core spent processing events (rate of "
                      "placewatch_processing_seconds_total). Near 100%: placewatch cannot "
                      "keep up.", "percentunit",
                      [(f"sum(rate({m.PROCESSING_SECONDS}_total[{_RATE}]))", "busy")],
                      thresholds=[("green", None), ("orange", 0.6), ("red", 0.9)], span=6),
            PanelSpec("timeseries", "Consumer lag by partition (Kafka source)",
                      "Messages in each partition of the events topic after the position "
                      "placewatch last committed, i.e. not yet in durable state. Only a "
                      "Kafka source exports it (placewatch_consumer_lag). A lag that keeps "
                      "rising means more workers or partitions are needed.", "short",
                      [(f"sum by (topic, partition) ({m.CONSUMER_LAG})",
                        "{{topic}} / {{partition}}")], no_value="Not a Kafka source"),
            PanelSpec("timeseries", "Duplicates and orphans",
                      "Duplicate decision ids per second (counted, applied once) and outcomes "
                      "whose placement never arrived in time.", "ops",
                      [(f'sum(rate({m.EVENTS}_total{{kind="duplicate"}}[{_RATE}]))',
                        "duplicates"),
                       (f"sum(rate({m.ORPHANED_OUTCOMES}_total[{_RATE}]))", "orphaned outcomes")]),
            PanelSpec("timeseries", "Alert delivery pending by target",
                      "Alert edges waiting in the outbox for each direct-delivery target "
                      "(alertmanager_urls, webhook_urls). Rising with failures: "
                      "PlacewatchAlertDeliveryFailing.", "short",
                      [(f"sum by (target) ({m.ALERT_DELIVERY_PENDING})", "{{target}}")],
                      runbooks=["PlacewatchAlertDeliveryFailing"],
                      no_value="No direct delivery configured"),
        ]),
        ("Detectors", [
            PanelSpec("table", "Alerts open now",
                      "Every alert open now, one row each (placewatch_alert_active): who is "
                      "affected and how. The runbook links explain each kind.", "short",
                      [(f"max by (kind, attribute, group, metric, fingerprint) "
                        f"({m.ALERT_ACTIVE})", "")],
                      runbooks=["PlacewatchEquityDrift", "PlacewatchPreferredTierDisparity",
                                "PlacewatchForecastDrift", "PlacewatchFeedbackAmplification",
                                "PlacewatchOverrideExpired"], span=24, instant=True,
                      no_value="No alert open"),
            PanelSpec("timeseries", "Equity-drift evidence against the threshold ($attribute)",
                      "The sequential test's statistic for each group and rate of the chosen "
                      "attribute; an alert fires when it crosses the family threshold (one "
                      "false-alarm budget, false_alarms_per_million, shared by every watch).",
                      "short",
                      [(f'max by (group, metric) ({m.DRIFT_STATISTIC}{{watch="equity_drift",'
                        f'attribute="$attribute",phase="alarm"}})', "{{group}} {{metric}}"),
                       (f"max({m.DRIFT_THRESHOLD})", "threshold")], span=24),
            PanelSpec("timeseries", "Forecast-drift evidence against the threshold ($attribute)",
                      "The same test on each group's forecast residuals (log actual over "
                      "predicted runtime and cost): an alert fires when a group's statistic "
                      "crosses the family threshold.", "short",
                      [(f'max by (group, metric) ({m.DRIFT_STATISTIC}{{watch="forecast_drift",'
                        f'attribute="$attribute",phase="alarm"}})', "{{group}} {{metric}}"),
                       (f"max({m.DRIFT_THRESHOLD})", "threshold")],
                      runbooks=["PlacewatchForecastDrift"], span=24),
        ]),
        ("Deep audit", [
            PanelSpec("timeseries", "Audit backlog",
                      "Sampled decisions waiting for the deep-audit worker, against the limit "
                      "beyond which they are recorded deferred (audit_backlog).", "short",
                      [(f"sum({m.AUDIT_BACKLOG})", "backlog"),
                       (f"sum({m.AUDIT_BACKLOG_LIMIT})", "limit")],
                      runbooks=["PlacewatchAuditBacklogFull"], span=8),
            PanelSpec("timeseries", "Deferred audits",
                      "Sampled decisions per second recorded without explanations because the "
                      "backlog was full.", "ops",
                      [(f"sum(rate({m.AUDITS_DEFERRED}_total[{_RATE}]))", "deferred")],
                      runbooks=["PlacewatchAuditDeferred"], span=8),
            PanelSpec("stat", "Audit chain verified",
                      "1: the audit store's hash chain verified at its latest check "
                      "(audit_verify_interval_s); 0 pages as PlacewatchAuditChainBroken.",
                      "short", [(f"min({m.AUDIT_CHAIN_OK})", "verified")],
                      thresholds=[("red", None), ("green", 1.0)],
                      runbooks=["PlacewatchAuditChainBroken"], span=8, instant=True),
            PanelSpec("timeseries", "Shadow-model accuracy",
                      "Prequential accuracy of the audit models over their last 1,000 "
                      "examples: how far the deep audit's \"what if\" answers can be trusted.",
                      "percentunit", [(f"max by (model) ({m.SHADOW_ACCURACY})", "{{model}}")],
                      minimum=0.0, maximum=1.0, span=24),
        ]),
    ], variables=("attribute",))

LEADERSHIP: Final = DashboardSpec(
    "placewatch-leadership", "placewatch: equity scorecard",
    "Who gets cheap compute, how that is changing, and what it costs each group.",
    [
        ("Scorecard", [
            PanelSpec("bargauge", "Parity ratio by attribute (cheap compute)",
                      "Smallest over largest group share of cheap-tier placements, per audited "
                      "attribute, among groups with min_group_support decisions. Below 0.8 "
                      "(the four-fifths line) is red.", "percentunit",
                      [(f'min by (attribute) ({m.PARITY_RATIO}{{metric="preferred_rate"}})',
                        "{{attribute}}")], thresholds=_FOUR_FIFTHS, minimum=0.0,
                      maximum=1.0, span=12, instant=True),
            PanelSpec("stat", "Findings open",
                      "Findings (alerts as cases) not resolved yet, acknowledged or not "
                      "(placewatch findings list).", "short",
                      [(f"sum({m.FINDINGS_UNRESOLVED})", "open")],
                      thresholds=[("green", None), ("orange", 1.0)], span=6, instant=True),
            PanelSpec("stat", "Median remediation age",
                      "Median time from detecting a finding to its resolution (by the "
                      "detector or a person), over the findings resolved so far.", "s",
                      [(f"histogram_quantile(0.5, sum by (le) ({m.REMEDIATION_AGE}_bucket)) "
                        f"and on() (sum({m.REMEDIATION_AGE}_count) > 0)", "median")],
                      thresholds=[("green", None), ("orange", 86400.0), ("red", 7 * 86400.0)],
                      span=6, instant=True, no_value="None resolved yet"),
            PanelSpec("table", "Parity ratio with its interval",
                      "Each attribute's parity ratio of cheap-tier share (lowest over highest "
                      "group) and the ends of its Katz interval at the configured confidence, "
                      "simultaneous over the attribute's groups (Bonferroni), as in the Monday "
                      "report. An upper end below 0.8 is a gap the data are sure of; a point "
                      "below 0.8 with an upper end above it may be noise.", "percentunit",
                      [(f'min by (attribute) ({m.PARITY_RATIO}{{metric="preferred_rate"}})',
                        "ratio"),
                       (f'min by (attribute) ({m.PARITY_RATIO_LOWER}{{metric="preferred_rate"}})',
                        "lower"),
                       (f'min by (attribute) ({m.PARITY_RATIO_UPPER}{{metric="preferred_rate"}})',
                        "upper")], span=24, instant=True),
        ]),
        ("Trend ($attribute)", [
            PanelSpec("timeseries", "Parity ratio over time",
                      "The chosen attribute's parity ratio of cheap-compute share, against the "
                      "four-fifths line.", "percentunit",
                      [(f'min({m.PARITY_RATIO}{{attribute="$attribute",'
                        f'metric="preferred_rate"}})', "parity ratio")],
                      thresholds=_FOUR_FIFTHS, minimum=0.0, maximum=1.0),
            PanelSpec("timeseries", "Change over the comparison window",
                      "Parity ratio now minus $compare ago (week over week by default): "
                      "negative is a widening gap.", "percentunit",
                      [(f'min({m.PARITY_RATIO}{{attribute="$attribute",'
                        f'metric="preferred_rate"}}) - min({m.PARITY_RATIO}'
                        f'{{attribute="$attribute",metric="preferred_rate"}} offset $compare)',
                        "change")]),
            PanelSpec("bargauge", "Groups with the least cheap compute",
                      "The five groups of the chosen attribute with the smallest share of "
                      "cheap-tier placements (point estimates; the table below gives their "
                      "intervals).", "percentunit",
                      [(f'bottomk(5, {m.GROUP_RATE}{{attribute="$attribute",'
                        f'metric="preferred_rate"}})', "{{group}}")],
                      minimum=0.0, maximum=1.0, instant=True),
            PanelSpec("table", "Cheap-compute share with its interval",
                      "Each group's share of cheap-tier placements with the ends of its "
                      "Wilson interval at the configured confidence (the placements each "
                      "rests on: placewatch_group_rate_support).", "percentunit",
                      [(f'max by (group) ({m.GROUP_RATE}{{attribute="$attribute",'
                        f'metric="preferred_rate"}})', "share"),
                       (f'max by (group) ({m.GROUP_RATE_LOWER}{{attribute="$attribute",'
                        f'metric="preferred_rate"}})', "lower"),
                       (f'max by (group) ({m.GROUP_RATE_UPPER}{{attribute="$attribute",'
                        f'metric="preferred_rate"}})', "upper")], instant=True),
        ]),
        ("Cost", [
            PanelSpec("timeseries", "Price per requested vCPU-hour by group",
                      "Mean price per hour per requested vCPU of each group's placements, in "
                      "the deployment's currency: what the scheduler charges each group for "
                      "the same unit of compute.", "currencyUSD",
                      [(f'{m.GROUP_CPU_HOUR_COST}{{attribute="$attribute"}}', "{{group}}")]),
            PanelSpec("bargauge", "Premium over the cheapest group",
                      "Each group's price per requested vCPU-hour minus the cheapest group's "
                      "of the same attribute: the cost of not getting the cheap tiers.",
                      "currencyUSD",
                      [(f'{m.GROUP_CPU_HOUR_COST}{{attribute="$attribute"}} - ignoring(group) '
                        f'group_left min without (group) ({m.GROUP_CPU_HOUR_COST}'
                        f'{{attribute="$attribute"}})', "{{group}}")], instant=True),
            PanelSpec("stat", "Cost of fairness over the comparison window",
                      "Saved: what the cheap tiers saved over $compare (cheap placements "
                      "times the mean premium-tier minus the mean cheap-tier price of one "
                      "placement). Extra spend: what the groups short of cheap compute paid "
                      "on top, had they had the other groups' cheap share (the sum of the "
                      "panel beside). Deployment currency; the Monday report's money method "
                      "with means pooled over the attribute's groups (how the two differ: "
                      "dashboards/README.md). No value when the window had no cheap or no "
                      "premium priced placement.", "currencyUSD",
                      [(f"{_priced('cheap')} * {_SAVED_PER_PLACEMENT}", "saved"),
                       (f"sum({_EXTRA_SPEND})", "extra spend")],
                      span=12, instant=True),
            PanelSpec("bargauge", "Extra spend by group over the comparison window",
                      "For each group of the chosen attribute: the cheap placements it would "
                      "have had over $compare at the other groups' cheap share, beyond its "
                      "own, times what one cheap placement saves. 0 for groups at or above "
                      "the others' share.", "currencyUSD",
                      [(_EXTRA_SPEND, "{{group}}")],
                      span=12, instant=True, minimum=0.0),
        ]),
    ], variables=("attribute",), compare=True)

REVIEWER: Final = DashboardSpec(
    "placewatch-reviewer", "placewatch: reviewer",
    "What the sampled deep audits, forecasts and feedback-loop checks say, group by group.",
    [
        ("Sampled audits", [
            PanelSpec("timeseries", "Decisions audited",
                      "Decisions sampled for a deep audit per second (one in fifty by "
                      "default), explained in full, and deferred.", "ops",
                      [(f"sum(rate({m.AUDITS}_total[{_RATE}]))", "sampled"),
                       (f"sum(rate({m.AUDITS_EXPLAINED}_total[{_RATE}]))", "explained"),
                       (f"sum(rate({m.AUDITS_DEFERRED}_total[{_RATE}]))", "deferred")],
                      span=12),
            PanelSpec("bargauge", "Group-flip rate by group (time range)",
                      "Share of the explained audits of each group whose shadow-model answer "
                      "changes when only the chosen attribute's value is changed, over the "
                      "dashboard's time range. High: the scheduler's choices for this group "
                      "hinge on the attribute itself. The Monday report gives the same rate "
                      "with its interval; the table below gives the audits it rests on.",
                      "percentunit",
                      [(f'sum by (group) (increase({m.AUDIT_GROUP_FLIPS}_total'
                        f'{{attribute="$attribute",group=~"$group"}}[$__range])) / '
                        f'sum by (group) (increase({m.AUDIT_GROUP_FLIP_CHECKS}_total'
                        f'{{attribute="$attribute",group=~"$group"}}[$__range]))', "{{group}}")],
                      thresholds=[("green", None), ("orange", 0.1), ("red", 0.25)],
                      minimum=0.0, maximum=1.0, span=12, instant=True),
            PanelSpec("table", "Group flips and the audits checked",
                      "Per group of the chosen attribute over the time range: explained audits "
                      "checked for a group flip, and those whose answer flipped (Prometheus's "
                      "increase() extrapolates to the range's ends, so these are rounded "
                      "estimates; the Monday report counts the records).", "short",
                      [(f'round(sum by (group) (increase({m.AUDIT_GROUP_FLIP_CHECKS}_total'
                        f'{{attribute="$attribute",group=~"$group"}}[$__range])))', "checked"),
                       (f'round(sum by (group) (increase({m.AUDIT_GROUP_FLIPS}_total'
                        f'{{attribute="$attribute",group=~"$group"}}[$__range])))', "flipped")],
                      span=24, instant=True),
        ]),
        ("Forecasts ($attribute)", [
            PanelSpec("timeseries", "Forecast bias by group",
                      "Mean log(actual / predicted) of runtime and cost per group of the "
                      "chosen attribute: 0 is unbiased, +0.41 means jobs take 1.5x their "
                      "forecast.", "short",
                      [(f'{m.FORECAST_BIAS}{{attribute="$attribute",group=~"$group"}}',
                        "{{group}} {{quantity}}")], runbooks=["PlacewatchForecastDrift"]),
            PanelSpec("timeseries", "Forecast error by group",
                      "Mean absolute log(actual / predicted) per group.", "short",
                      [(f'{m.FORECAST_MAE}{{attribute="$attribute",group=~"$group"}}',
                        "{{group}} {{quantity}}")]),
        ]),
        ("Feedback loops and overrides", [
            PanelSpec("timeseries", "Queue and preemption rates by group",
                      "Share of each group's decisions queued and preempted: where a loop "
                      "shows first.", "percentunit",
                      [(f'{m.GROUP_RATE}{{attribute="$attribute",group=~"$group",'
                        f'metric=~"queue_rate|preemption_rate"}}', "{{group}} {{metric}}")],
                      minimum=0.0),
            PanelSpec("timeseries", "Amplification growth by group",
                      "For a group in an equity-drift alarm: its shortfall since detection "
                      "minus its shortfall at detection, so far while its trend_window fills, "
                      "then the window's final figure. Rising: the scheduler's own decisions "
                      "are widening the gap (PlacewatchFeedbackAmplification fires when the "
                      "growth is significant and at least trend_min_growth). Absent while no "
                      "group is in alarm.", "percentunit",
                      [(f'{m.AMPLIFICATION_GROWTH}{{attribute="$attribute",group=~"$group"}}',
                        "{{group}} {{metric}}")], runbooks=["PlacewatchFeedbackAmplification"],
                      no_value="No group in a drift alarm"),
            PanelSpec("timeseries", "Overrides applied, active and expired",
                      "Placements per second carrying a manual override, within its limit "
                      "(active) and past its expiry or maximum age (expired; each such "
                      "override is also an override_expired alert).", "ops",
                      [(f"sum by (state) (rate({m.OVERRIDES}_total[{_RATE}]))", "{{state}}")],
                      runbooks=["PlacewatchOverrideExpired"]),
            PanelSpec("stat", "Amplification and override alerts open",
                      "Feedback-loop amplification alerts (a gap that keeps widening) and "
                      "expired overrides still applied, open now.", "short",
                      [(f'sum by (kind) ({m.ALERTS_OPEN}{{kind=~"amplification|'
                        f'override_expired"}})', "{{kind}}")],
                      thresholds=[("green", None), ("red", 1.0)],
                      runbooks=["PlacewatchFeedbackAmplification", "PlacewatchOverrideExpired"],
                      instant=True),
        ]),
    ])

DASHBOARDS: Final = (SRE, LEADERSHIP, REVIEWER)


def _thresholds(steps: Sequence[tuple[str, float | None]]) -> db.ThresholdsConfig:
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(color=colour, value=value) for colour, value in steps])


def _panel(spec: PanelSpec) -> Any:
    # the four panel builders share these methods but no declared type that has them
    kinds: dict[str, Any] = {"timeseries": Timeseries, "stat": Stat, "bargauge": BarGauge,
                             "table": Table}
    panel = kinds[spec.kind]()
    panel.title(spec.title).description(spec.description).unit(spec.unit).datasource(_DS)
    panel.span(spec.span).height(8)
    if spec.thresholds:
        panel.thresholds(_thresholds(spec.thresholds))
    if spec.minimum is not None:
        panel.min(spec.minimum)
    if spec.maximum is not None:
        panel.max(spec.maximum)
    if spec.no_value:
        panel.no_value(spec.no_value)
    if spec.runbooks:
        panel.links([db.DashboardLink(f"Runbook: {name}").type(dm.DashboardLinkType.LINK)
                     .url(f"{RUNBOOKS}{name}.md").target_blank(True)
                     for name in spec.runbooks])
    refs = "ABCDEFGH"[:len(spec.queries)]
    for ref, (expr, legend) in zip(refs, spec.queries, strict=True):
        query = Query().expr(expr).ref_id(ref).datasource(_DS)
        if legend:
            query.legend_format(legend)
        if spec.instant:
            query.instant()
        else:
            query.range()
        if spec.kind == "table":  # one row per series, its labels as columns
            query.format(PromQueryFormat.TABLE)
        panel.with_target(query)
    if spec.kind == "table":
        # one frame per query, merged on their labels; "Value #A" named by its legend
        value = {f"Value #{ref}": legend for ref, (_, legend) in zip(refs, spec.queries,
                                                                     strict=True) if legend}
        if len(spec.queries) > 1:
            panel.with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
        else:
            value = {"Value": spec.queries[0][1]} if spec.queries[0][1] else {}
        panel.with_transformation(dm.DataTransformerConfig(
            id_val="organize", options={"excludeByName": {"Time": True},
                                        "renameByName": value}))
    return panel


def _dashboard(spec: DashboardSpec) -> db.Dashboard:
    board = (db.Dashboard(spec.title).uid(spec.uid).description(spec.description)
             .tags(list(spec.tags)).refresh("1m").time("now-24h", "now").timezone("utc")
             .with_variable(db.DatasourceVariable("datasource").label("Prometheus")
                            .type("prometheus")))
    if "attribute" in spec.variables:
        board.with_variable(
            db.QueryVariable("attribute").label("Attribute").datasource(_DS)
            .description("The audited attribute (team, region, tenant tier, ...).")
            .query(f"label_values({m.TRACKED_GROUPS}, attribute)")
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED))
    if "group" in spec.variables:
        board.with_variable(
            db.QueryVariable("group").label("Group").datasource(_DS).multi(True)
            .include_all(True).all_value(".*")
            .description("Groups of the chosen attribute.")
            .query(f'label_values({m.GROUP_RATE}{{attribute="$attribute"}}, group)')
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED))
    if spec.compare:
        board.with_variable(
            db.CustomVariable("compare").label("Compare with").values("1w,1d,4w")
            .description("How far back \"change\" panels compare (week over week: 1w)."))
    for title, panels in spec.rows:
        board.with_row(db.Row(title))
        for panel in panels:
            board.with_panel(_panel(panel))
    return board


def render(spec: DashboardSpec) -> str:
    """The dashboard's JSON, as committed (sorted keys, two-space indent, final newline)."""
    return JSONEncoder(sort_keys=True, indent=2).encode(_dashboard(spec).build()) + "\n"


def build_all() -> dict[str, str]:
    """File name -> JSON of every dashboard."""
    return {f"{spec.uid}.json": render(spec) for spec in DASHBOARDS}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate dashboards/json from code.")
    parser.add_argument("--check", action="store_true",
                        help="Exit 1 if a committed file differs from what the code builds.")
    args = parser.parse_args(argv)
    JSON_DIR.mkdir(exist_ok=True)
    stale = []
    for name, text in build_all().items():
        path = JSON_DIR / name
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python -m dashboards.build",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
