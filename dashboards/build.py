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
                      runbooks=["PlacewatchAlertDeliveryFailing"]),
        ]),
        ("Detectors", [
            PanelSpec("table", "Alerts open now",
                      "Every alert open now, one row each (placewatch_alert_active): who is "
                      "affected and how. The runbook links explain each kind.", "short",
                      [(f"max by (kind, attribute, group, metric, fingerprint) "
                        f"({m.ALERT_ACTIVE})", "")],
                      runbooks=["PlacewatchEquityDrift", "PlacewatchPreferredTierDisparity",
                                "PlacewatchForecastDrift", "PlacewatchFeedbackAmplification",
                                "PlacewatchOverrideExpired"], span=24, instant=True),
            PanelSpec("timeseries", "Equity-drift evidence against the threshold ($attribute)",
                      "The sequential test's statistic for each group and rate of the chosen "
                      "attribute; an alert fires when it crosses the family threshold (one "
                      "false-alarm budget, false_alarms_per_million, shared by every watch).",
                      "short",
                      [(f'max by (group, metric) ({m.DRIFT_STATISTIC}{{watch="equity_drift",'
                        f'attribute="$attribute",phase="alarm"}})', "{{group}} {{metric}}"),
                       (f"max({m.DRIFT_THRESHOLD})", "threshold")], span=24),
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
                      [(f"histogram_quantile(0.5, sum by (le) ({m.REMEDIATION_AGE}_bucket))",
                        "median")], thresholds=[("green", None), ("orange", 86400.0),
                                                ("red", 7 * 86400.0)], span=6, instant=True),
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
                      "Wilson interval at the configured confidence, and the decisions it "
                      "rests on.", "percentunit",
                      [(f'{m.GROUP_RATE}{{attribute="$attribute",metric="preferred_rate"}}',
                        "share"),
                       (f'{m.GROUP_RATE_LOWER}{{attribute="$attribute",'
                        f'metric="preferred_rate"}}', "lower"),
                       (f'{m.GROUP_RATE_UPPER}{{attribute="$attribute",'
                        f'metric="preferred_rate"}}', "upper")], instant=True),
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
                      span=24),
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
    if spec.runbooks:
        panel.links([db.DashboardLink(f"Runbook: {name}").type(dm.DashboardLinkType.LINK)
                     .url(f"{RUNBOOKS}{name}.md").target_blank(True)
                     for name in spec.runbooks])
    for ref, (expr, legend) in zip("ABCDEFGH", spec.queries, strict=False):
        query = Query().expr(expr).ref_id(ref).datasource(_DS)
        if legend:
            query.legend_format(legend)
        if spec.instant:
            query.instant()
        else:
            query.range()
        panel.with_target(query)
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
