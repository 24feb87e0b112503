"""Detection-quality benchmark: every simulator scenario over many seeds, scored against truth.

For each (scenario, seed) the simulator's events run through a fresh core with the default
configuration, and every alert is classified against the scenario's ground truth:

* **hit**: an alert of the scenario's expected kind on the changed group (``team=genomics``)
  and metric, at or after the change;
* **related**: after the change, on a group that contains the changed team's jobs (its
  department, region or tenant tier, or a pair with it), not a false alarm;
* **side effect**: after the change, on an unrelated group (the change moves capacity to
  others, so some of these are real consequences);
* **false alarm**: any alert before the change, and every alert on ``baseline``.

Detection delay is counted in the affected group's own observations of the measured quantity,
between the change and the alert: its ``place`` decisions stating a tier for the cheap-tier
share (and the amplification of its gap) and for its queue waits, all its decisions for the
other rates and for overrides, its outcomes for forecasts.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import zlib
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
import orjson

from detectors.alerts import Alert
from detectors.config import CoreConfig
from detectors.rates import RATE_BY_NAME
from simulator import SCENARIOS, Simulation, world
from streams.app import create_app
from streams.settings import Settings
from streams.sinks.base import Batch

__all__ = ["OWN", "PEERS", "PEER_SCENARIOS", "PRIMARY", "ROWS", "SPARSE_ATTRIBUTE", "STREAM_OF",
           "RunScore",
           "ScenarioScore", "peer_comparison", "peer_verdict", "run_detection", "score_run",
           "sparse_config", "summarise", "with_sparse_groups"]

PRIMARY: dict[str, tuple[str, str]] = {
    "equity_drift": ("equity_drift", "preferred_rate"),
    "forecast_bias": ("forecast_drift", "runtime_actual_over_predicted"),
    "feedback_loop": ("amplification", "preferred_rate_gap_growth"),
    "step_change": ("equity_drift", "preferred_rate"),
    "slow_drift": ("equity_drift", "preferred_rate"),
    "preemption_concentration": ("equity_drift", "preemption_rate"),
    "override_leak": ("override_expired", "override_past_limit_seconds"),
    "standing_disparity": ("disparity", "preferred_rate_parity_ratio"),
    "wait_drift": ("wait_drift", "queue_wait"),
    "scheduling_equity": ("scheduling_equity", "queue_wait_gap"),
}
"""Per scenario: the alert (kind, metric) that counts as detecting it."""

STREAM_OF: dict[str, str] = {"scheduling_equity": "wait_drift"}
"""Benchmark rows that score another scenario's stream for a second alert kind: the
``wait_drift`` stream (its team's queued jobs wait x1.5 as long) scored on the
``scheduling_equity`` alert, whose gap it pushes past the 12% limit."""

ROWS: tuple[str, ...] = (*SCENARIOS, *STREAM_OF)
"""Every row ``bench detection`` can run: the simulator's scenarios and :data:`STREAM_OF`."""



def _related_groups(team: str) -> set[tuple[str, str]]:
    """The (attribute, group) pairs that contain the team's jobs, from the simulated world."""
    for t in world.TEAMS:
        if t.name == team:
            return {("department", t.department), ("region", t.region),
                    ("tenant_tier", t.tenant_tier)}
    return set()


PEERS: dict[str, str] = {
    "river adwin (defaults)": "adwin",
    "river adwin (tuned)": "adwin:delta=0.05",
    "river page_hinkley (defaults)": "page_hinkley",
    "river page_hinkley (tuned)": "page_hinkley:threshold=12,delta=0.3,min_instances=5",
}
"""River's detectors run by ``bench detection`` beside placewatch's CUSUM, each as a
``drift_detector`` (:mod:`detectors.river_cycle`) on the same contrast: River's defaults, and
one setting tuned on seeds outside the benchmark's for speed within the false-alarm budget
(docs/detectors.md has the search)."""

PEER_SCENARIOS = ("baseline", "equity_drift", "feedback_loop")
"""The scenarios the equity-drift watches decide (the peers replace only their test)."""

OWN = "placewatch cusum"
"""The label of placewatch's own detector in a run with peers."""


@dataclass
class RunScore:
    scenario: str
    seed: int
    events: int
    change_index: int | None
    detector: str = OWN
    """Which sequential test the equity-drift watches ran (:data:`PEERS`)."""
    hit_delay: int | None = None
    """Affected-group events from the change to the first hit (None: missed)."""
    first_named_target: bool = False
    """Whether the first alert of the expected kind after the change named the target group."""
    amplification_on_target: bool = False
    false_alarms: int = 0
    related: int = 0
    side_effects: int = 0
    alerts: list[str] = field(default_factory=list)


def _target_counts(lines: list[bytes], team: str) -> dict[str, list[int]]:
    """Cumulative counts of the target's observations of each kind, at each event index.

    ``decisions``: its placement events (any action); ``placements``: its ``place`` decisions
    stating a tier (what the cheap-tier share is measured on); ``outcomes``: its outcomes.
    """
    counts: dict[str, list[int]] = {"decisions": [], "placements": [], "outcomes": []}
    ours: set[str] = set()
    d = p = o = 0
    for raw in lines:
        event = orjson.loads(raw)
        if event["event_type"] == "placement":
            if event["attributes"].get("team") == team:
                ours.add(event["decision_id"])
                d += 1
                decision = event["decision"]
                p += decision["action"] == "place" and "tier" in decision
        elif event["decision_id"] in ours:
            o += 1
        counts["decisions"].append(d)
        counts["placements"].append(p)
        counts["outcomes"].append(o)
    return counts


_DELAY_UNIT = {"forecast_drift": "outcomes", "override_expired": "decisions",
               "wait_drift": "placements", "scheduling_equity": "placements"}


def _delay_unit(metric: str) -> str:
    """What a rate's detection delay is counted in (its denominator's kind of event)."""
    spec = RATE_BY_NAME.get(metric.removesuffix("_gap_growth"))
    return spec.counted_over if spec is not None else "decisions"


def _is_target_group(attribute: str | None, group: str | None, team: str) -> bool:
    if attribute == "team":
        return group == team
    return bool(attribute and group and "team" in attribute.split("*")
                and team in (group.split("*")))


def _is_related(alert: dict[str, Any], team: str) -> bool:
    attribute, group = alert.get("attribute"), alert.get("group")
    related = _related_groups(team)
    if (attribute, group) in related:
        return True
    if attribute and "*" in attribute and group:
        return team in group.split("*") or any(
            (a, g) in related for a, g in zip(attribute.split("*"), group.split("*"),
                                                strict=False))
    if alert.get("kind") == "override_expired":
        return bool(alert.get("details", {}).get("attributes", {}).get("team") == team)
    return False


class _FiredAlerts:
    """A sink keeping the firing edge of every alert."""

    name = "alerts"

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def write(self, batch: Batch) -> None:
        self.alerts.extend(a for a in batch.alerts if a.state == "firing")

    def durable(self) -> None:
        return None

    def close(self) -> None:
        return None


def _fired_alerts(lines: list[bytes], config: CoreConfig) -> list[Alert]:
    """Every alert fired on ``lines``, by the service's own loop (deep audits off: they
    cannot change what is detected, and would only slow the benchmark down)."""
    app = create_app(Settings(core=config.without_audits(), audit_worker="inline"))
    sink = _FiredAlerts()
    app.start_audits(live=False)
    for _ in app.consume((("bench", raw) for raw in lines), [sink]):
        pass
    app.close_input([sink])
    return sink.alerts


SPARSE_ATTRIBUTE: Final = "project"
"""The attribute ``sparse_groups`` adds to every placement."""


def with_sparse_groups(lines: list[bytes], groups: int) -> list[bytes]:
    """Every placement also carries ``project`` = one of ``groups`` values, by job: sparse
    groups (about placements / ``groups`` each), for the scaling run. Groups still warming up
    must not slow detection of the others; those that finish warming up can alarm, and join
    the false-alarm budget (1,225 groups stay below every warm-up in 100,000 events; 300 groups
    finish the forecast warm-up of 100 outcomes within it)."""
    out = []
    for raw in lines:
        event = orjson.loads(raw)
        if event["event_type"] == "placement":
            project = zlib.crc32(event["job_id"].encode()) % groups
            event["attributes"][SPARSE_ATTRIBUTE] = f"p{project:05d}"
            raw = orjson.dumps(event)
        out.append(raw)
    return out


def sparse_config(core: CoreConfig, groups: int) -> CoreConfig:
    """``core`` tracking every value of :data:`SPARSE_ATTRIBUTE` (:func:`with_sparse_groups`),
    whatever its attributes and ``max_attributes`` say."""
    audited = core.attributes
    if audited is not None and SPARSE_ATTRIBUTE not in audited:
        audited = (*audited, SPARSE_ATTRIBUTE)
    return dataclasses.replace(
        core, max_groups_per_attribute=max(core.max_groups_per_attribute, groups),
        attributes=audited, max_attributes=core.max_attributes + 1)


def score_run(scenario: str, seed: int, events: int,
              config: CoreConfig | None = None, detector: str = OWN,
              sparse_groups: int = 0) -> RunScore:
    """Simulate, run the pipeline, and classify every alert (pure but CPU-heavy).
    ``detector``: a :data:`PEERS` label, whose River setting replaces the configured
    ``drift_detector``; ``sparse_groups``: add that many groups of a sparse attribute
    (:func:`with_sparse_groups`; tracked whatever ``max_groups_per_attribute`` says)."""
    sim = Simulation(SCENARIOS[STREAM_OF.get(scenario, scenario)], events, seed)
    lines = list(sim)
    truth = sim.truth
    change = truth["change"]
    change_index = change["from_event_index"] if change else None
    core = config or CoreConfig()
    if detector != OWN:
        core = dataclasses.replace(core, drift_detector=PEERS[detector])
    if sparse_groups:
        lines = with_sparse_groups(lines, sparse_groups)
        core = sparse_config(core, sparse_groups)
    alerts = _fired_alerts(lines, core)
    score = RunScore(scenario, seed, len(lines), change_index, detector)
    team = change["group"] if change else "genomics"
    counts = _target_counts(lines, team) if change else {}
    kind, metric = PRIMARY.get(scenario, ("", ""))
    first_of_kind_seen = False
    for alert in alerts:
        record = msgspec.to_builtins(alert)
        score.alerts.append(f"{alert.event_index}:{alert.kind}:{alert.attribute}="
                            f"{alert.group}:{alert.metric}")
        if change_index is None or alert.event_index < change_index:
            score.false_alarms += 1
            continue
        on_target = _is_target_group(alert.attribute, alert.group, team) or (
            alert.kind == "override_expired" and _is_related(record, team))
        if alert.kind == "amplification" and alert.attribute == "team" and on_target:
            score.amplification_on_target = True
        if alert.kind == kind and not first_of_kind_seen:
            first_of_kind_seen = True
            score.first_named_target = on_target and alert.attribute in ("team", None)
        if (alert.kind == kind and alert.metric == metric and on_target
                and score.hit_delay is None):
            unit = _DELAY_UNIT.get(kind) or _delay_unit(metric)
            series = counts[unit]
            score.hit_delay = series[alert.event_index] - series[change_index]
        elif on_target or _is_related(record, team):
            score.related += 1
        else:
            score.side_effects += 1
    return score


def _score(args: tuple[str, int, int, CoreConfig, str, int]) -> RunScore:
    return score_run(*args)


def run_detection(scenarios: Iterable[str], seeds: int, events: int, workers: int,
                  progress: Any = None, config: CoreConfig | None = None,
                  peers: Iterable[str] = (), sparse_groups: int = 0) -> list[RunScore]:
    """Every (scenario, seed) run, in parallel processes; and every (peer, scenario, seed)
    for each :data:`PEERS` label in ``peers``, on the :data:`PEER_SCENARIOS` among
    ``scenarios``; each with ``sparse_groups`` added (:func:`score_run`)."""
    core = config or CoreConfig()
    chosen = list(scenarios)
    jobs = [(s, seed, events, core, OWN, sparse_groups) for s in chosen
            for seed in range(1, seeds + 1)]
    jobs += [(s, seed, events, core, peer, sparse_groups) for peer in peers for s in chosen
             if s in PEER_SCENARIOS for seed in range(1, seeds + 1)]
    out = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for score in pool.map(_score, jobs):
            out.append(score)
            if progress is not None:
                progress(score)
    return out


def _quantile(values: list[int], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class ScenarioScore:
    scenario: str
    detector: str
    runs: int
    events: int
    detected: int
    delay_p50: float | None
    delay_p90: float | None
    named_target_first: int
    amplification_on_target: int
    false_alarms: int
    related: int
    side_effects: int

    @property
    def false_alarms_per_million(self) -> float:
        """Alerts before the change per million pre-change events (NaN when the change is at
        the first event, as in ``standing_disparity``: nothing before it to alarm on)."""
        return self.false_alarms / self.events * 1e6 if self.events else math.nan


def summarise(scores: list[RunScore]) -> list[ScenarioScore]:
    """One row per (detector, scenario)."""
    out = []
    for detector, scenario in dict.fromkeys((s.detector, s.scenario) for s in scores):
        runs = [s for s in scores if s.scenario == scenario and s.detector == detector]
        delays = [s.hit_delay for s in runs if s.hit_delay is not None]
        pre_change_events = sum(s.change_index if s.change_index is not None else s.events
                                for s in runs)
        out.append(ScenarioScore(
            scenario, detector, len(runs), pre_change_events, len(delays),
            statistics.median(delays) if delays else None, _quantile(delays, 0.9),
            sum(s.first_named_target for s in runs),
            sum(s.amplification_on_target for s in runs),
            sum(s.false_alarms for s in runs), sum(s.related for s in runs),
            sum(s.side_effects for s in runs)))
    return out


def _peer_pairs(rows: list[ScenarioScore]) -> tuple[
        ScenarioScore, ScenarioScore, float,
        list[tuple[str, ScenarioScore, ScenarioScore, float]]] | None:
    """Placewatch's equity_drift and baseline rows and p90 delay, and each River setting's
    (label, equity_drift row, baseline row, p90); None without placewatch's two rows. A p90
    of a setting that never detected is infinite."""
    def row(detector: str, scenario: str) -> ScenarioScore | None:
        return next((r for r in rows if r.detector == detector and r.scenario == scenario),
                    None)

    def p90(r: ScenarioScore) -> float:
        return r.delay_p90 if r.delay_p90 is not None else math.inf

    own_drift, own_baseline = row(OWN, "equity_drift"), row(OWN, "baseline")
    if own_drift is None or own_baseline is None:
        return None
    peers = []
    for detector in dict.fromkeys(r.detector for r in rows if r.detector != OWN):
        drift, baseline = row(detector, "equity_drift"), row(detector, "baseline")
        if drift is not None and baseline is not None:
            peers.append((detector, drift, baseline, p90(drift)))
    return own_drift, own_baseline, p90(own_drift), peers


def peer_verdict(rows: list[ScenarioScore]) -> tuple[bool, str] | None:
    """Whether placewatch is ahead of every River setting, with the figures; None without
    peers or without the equity_drift and baseline rows.

    A River setting beats placewatch when it finds equity_drift in as many runs, with a p90
    delay no larger and no more false alarms on baseline: as fast and as quiet, so whichever
    of the two one weighs, it is the better test. Placewatch is ahead when no setting does;
    the settings that do are named. (A setting that is faster but louder, or quieter but
    slower, does not beat it: the table shows that trade-off.)
    """
    pairs = _peer_pairs(rows)
    if pairs is None or not pairs[3]:
        return None
    own_drift, own_baseline, own_p90, peers = pairs
    beaten_by = [f"{detector} ({drift.detected}/{drift.runs}, p90 {p90:,.0f}, "
                 f"{baseline.false_alarms} false alarms)"
                 for detector, drift, baseline, p90 in peers
                 if drift.detected >= own_drift.detected and p90 <= own_p90
                 and baseline.false_alarms <= own_baseline.false_alarms]
    own = (f"placewatch {own_drift.detected}/{own_drift.runs} found, p90 {own_p90:,.0f}, "
           f"{own_baseline.false_alarms} false alarms")
    if beaten_by:
        return False, f"{own}; as fast and as quiet: {'; '.join(beaten_by)}"
    return True, f"{own}; no River setting of {len(peers)} is as fast and as quiet"


def peer_comparison(rows: list[ScenarioScore]) -> list[str]:
    """One line per River setting: placewatch's equity_drift p90 delay and baseline false
    alarms against its, and which is ahead on each."""
    def word(own: float, theirs: float) -> str:
        return "ahead" if own < theirs else "level" if own == theirs else "behind"

    pairs = _peer_pairs(rows)
    if pairs is None:
        return []
    own_drift, own_baseline, own_p90, peers = pairs
    return [f"vs {detector}: equity_drift p90 {own_p90:,.0f} against {p90:,.0f} "
            f"({word(own_p90, p90)}), found {own_drift.detected} against "
            f"{drift.detected}, baseline false alarms {own_baseline.false_alarms} "
            f"against {baseline.false_alarms} "
            f"({word(own_baseline.false_alarms, baseline.false_alarms)})"
            for detector, drift, baseline, p90 in peers]
