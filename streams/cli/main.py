"""The ``placewatch`` command line."""

from __future__ import annotations

import collections
import datetime as dt
import logging
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from detectors.pipeline import AuditCore
from simulator import SCENARIOS, Simulation
from streams.app import KafkaRun, create_app, graceful_stop
from streams.cli.audit import audit_app
from streams.cli.bench import bench_app
from streams.cli.dashboards import dashboards_app
from streams.cli.findings import findings_app
from streams.cli.kafka import kafka_app
from streams.cli.report import report
from streams.cli.support import ERR, ConfigOpt, NoLive, State, make_parent, progress, settings_for
from streams.errors import PlacewatchError
from streams.logs import log_event
from streams.settings import Settings
from streams.sinks.directory import DirectoryLock
from streams.sources.alibaba import DEFAULT_EPOCH, convert_pod_list
from streams.sources.files import check_inputs, count_lines, file_events, paced
from streams.sources.live import Event

__all__ = ["app", "main"]

_LOG = logging.getLogger("placewatch")

app = typer.Typer(
    name="placewatch",
    help=(
        "Audit a cost-aware job scheduler's placement decisions as they happen: who gets cheap "
        "compute, who waits, who is preempted, and whether it is drifting.\n\n"
        "Start with `placewatch run` (the built-in simulator, live, metrics on 127.0.0.1) or "
        "`placewatch replay FILE --out DIR` (a file of v1 contract events)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
import_app = typer.Typer(help="Convert public traces into v1 contract events.",
                         no_args_is_help=True, rich_markup_mode="markdown")
config_app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True,
                         rich_markup_mode="markdown")
app.add_typer(import_app, name="import")
app.add_typer(audit_app, name="audit")  # streams/cli/audit.py
app.add_typer(findings_app, name="findings")  # streams/cli/findings.py
app.add_typer(dashboards_app, name="dashboards")  # streams/cli/dashboards.py
app.add_typer(bench_app, name="bench")  # streams/cli/bench.py
app.add_typer(kafka_app, name="kafka")  # streams/cli/kafka.py
app.command("report")(report)  # streams/cli/report.py
app.add_typer(config_app, name="config")


@app.callback()
def _root(
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Only warnings and errors; no progress bars.")] = False,
    log_format: Annotated[str | None, typer.Option(
        "--log-format", help="Log lines as 'text' or 'json' (default: setting log_format).")
    ] = None,
) -> None:
    State.quiet = quiet
    State.log_format = log_format


# -- simulate -------------------------------------------------------------------------------

@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Events file to write (.jsonl).",
                                      dir_okay=False)],
    scenario: Annotated[str, typer.Option(help=f"One of: {', '.join(SCENARIOS)}.")
                        ] = "baseline",
    events: Annotated[int, typer.Option(min=1, help="Number of events to write.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same bytes.")
                    ] = 1,
    truth: Annotated[Path | None, typer.Option(
        help="Ground-truth JSON (what changed, for whom, from which event index). "
             "Default: OUT with .truth.json.", dir_okay=False)] = None,
    revert_at: Annotated[int | None, typer.Option(
        min=1, help="Undo the scenario's change from this event index on (after the change: "
                    "at 40% of --events, or the first event for standing_disparity), so its "
                    "alerts can be seen to resolve.")] = None,
) -> None:
    """Write simulated scheduler events (v1 contract) and their ground truth.

    Scenarios: baseline (fair, stationary); equity_drift (a team's cheap-tier share falls
    ~20 points); forecast_bias (a team's runtimes under-forecast x1.5); feedback_loop (a
    team's delays feed its next deferrals); step_change (a one-off shift); slow_drift (a
    team's cheap-tier share sliding steadily, 60,000 events from none to the full shift);
    preemption_concentration; standing_disparity (a shortfall from the first event); wait_drift (a
    team's queued jobs wait x1.5 as long); override_leak (an override that never expires).
    """
    settings_for(None)
    if scenario not in SCENARIOS:
        raise PlacewatchError(f"--scenario: unknown {scenario!r}; valid: {', '.join(SCENARIOS)}")
    truth = truth or out.with_name(out.name.removesuffix(".jsonl") + ".truth.json")
    try:
        sim = Simulation(SCENARIOS[scenario], events, seed, revert_at)
    except ValueError as exc:
        raise PlacewatchError(f"--revert-at: {exc}") from exc
    make_parent(out)
    with out.open("wb") as handle, progress(events, f"simulate {scenario}") as bar:
        task = bar.add_task("events", total=events)
        for i, line in enumerate(sim, start=1):
            handle.write(line + b"\n")
            if i % 5000 == 0:
                bar.update(task, completed=i)
        bar.update(task, completed=events)
    truth.write_bytes(orjson.dumps(sim.truth, option=orjson.OPT_INDENT_2) + b"\n")
    log_event(_LOG, logging.INFO, "simulated", scenario=scenario, events=events, seed=seed,
              out=str(out), truth=str(truth))


# -- import ---------------------------------------------------------------------------------

@import_app.command("alibaba-gpu2023")
def import_alibaba(
    pod_list: Annotated[Path, typer.Argument(help="openb_pod_list_*.csv from the trace.",
                                             dir_okay=False, metavar="POD_LIST.csv")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Events file to write (.jsonl).",
                                      dir_okay=False)],
    epoch: Annotated[str, typer.Option(help="RFC 3339 time that trace second 0 maps to.")
                     ] = DEFAULT_EPOCH.isoformat(),
) -> None:
    """Convert the Alibaba GPU 2023 pod list to v1 events (qos is the audited attribute).

    Scheduled pods become `place` decisions at scheduled_time (queue wait = scheduled -
    creation); never-scheduled pods become `queue` decisions; Succeeded/Failed pods get
    outcomes at deletion_time, deleted Pending pods a `killed` outcome. Rows that cannot be
    converted are written with their reason to OUT.rejected.jsonl. See docs/importers.md.
    """
    settings_for(None)
    try:
        anchor = dt.datetime.fromisoformat(epoch.replace("Z", "+00:00"))
    except ValueError:
        raise PlacewatchError(f"--epoch: not an RFC 3339 time: {epoch!r}") from None
    if anchor.tzinfo is None:
        raise PlacewatchError("--epoch: needs a time zone (e.g. 2023-07-01T00:00:00Z)")
    events, rejected = convert_pod_list(pod_list, anchor)
    written = 0
    make_parent(out)
    with out.open("wb") as handle, progress(None, "import") as bar:
        task = bar.add_task("events", total=None)
        for line in events:
            handle.write(line + b"\n")
            written += 1
        bar.update(task, completed=written, total=written)
    rejected_path = out.with_name(out.name.removesuffix(".jsonl") + ".rejected.jsonl")
    rejected_path.unlink(missing_ok=True)
    if rejected:
        rejected_path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rejected))
        log_event(_LOG, logging.WARNING, "rows not converted", rows=len(rejected),
                  file=str(rejected_path))
    log_event(_LOG, logging.INFO, "imported", events=written, out=str(out))


# -- replay ---------------------------------------------------------------------------------

@app.command()
def replay(
    files: Annotated[list[Path], typer.Argument(help="Event files (.jsonl or .jsonl.gz), "
                                                "processed in this order.", metavar="FILE")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the results.",
                                      file_okay=False)],
    config: ConfigOpt = None,
) -> None:
    """Run the whole pipeline over event files and write the contract's results to OUT.

    Writes alerts.jsonl, summary.json (counts and the fairness section), dead_letter.jsonl
    (every rejected event with its reason and original bytes), metrics.prom, the audit
    store audit.sqlite and findings.sqlite (every alert as a case: placewatch findings).
    The same input and configuration give byte-identical alerts, summary and audit records.
    """
    settings = settings_for(config)
    check_inputs(files)
    placewatch = create_app(settings)
    placewatch.inputs = [f.name for f in files]
    total = count_lines(files)
    with progress(total, "replay") as bar:
        task = bar.add_task("events", total=total)
        summary = placewatch.replay(file_events(files), out,
                                    progress=lambda n: bar.advance(task, n))
    if not State.quiet:
        ERR.print(_summary_table(summary))


def _summary_table(summary: dict[str, object]) -> Table:
    table = Table(title="placewatch summary", show_header=False)
    for key in ("events_in", "placements", "outcomes", "duplicates", "rejected",
                "orphaned_outcomes", "audited", "alerts"):
        table.add_row(key, str(summary[key]))
    return table


# -- run ------------------------------------------------------------------------------------

@app.command()
def run(
    config: ConfigOpt = None,
    scenario: Annotated[str, typer.Option(help=f"Simulator scenario: {', '.join(SCENARIOS)}.")
                        ] = "equity_drift",
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 1,
    speedup: Annotated[float, typer.Option(min=0.001, help="Simulated seconds per real "
                                           "second (6000: a hundred simulated minutes a "
                                           "second, about 1,200 events/s).")] = 6000.0,
    max_events: Annotated[int | None, typer.Option(min=1, help="Stop after this many events "
                                                   "(default: run until Ctrl-C).")] = None,
    revert_at: Annotated[int | None, typer.Option(min=1, help="Undo the scenario's change from "
                                                  "this event index on, so its alerts can be "
                                                  "seen to resolve (see simulate --help).")
                         ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for alerts, dead letters,"
                                      " the audit store and the final summary.",
                                      file_okay=False)] = Path("placewatch-data"),
    metrics_port: Annotated[int | None, typer.Option(help="Port of /metrics (default: setting "
                                                     "metrics_port, 9469; 0 picks a free one).")
                            ] = None,
    source: Annotated[str, typer.Option(
        help="'simulator' (the built-in one, the default) or kafka://HOST:PORT[,HOST:PORT]: "
             "consume the events topic (kafka_events_topic, default placewatch.events; "
             "placements and outcomes keyed by decision_id) in consumer group kafka_group_id; "
             "dead letters, alert edges and audit records also go to their topics (see "
             "`placewatch kafka topics`).")] = "simulator",
    stop_when_idle: Annotated[float | None, typer.Option(
        min=0.1, help="With a Kafka source: stop cleanly once no new event has arrived for "
                      "this many seconds after the partitions were assigned (default: run "
                      "until Ctrl-C or SIGTERM).")] = None,
) -> None:
    """The main job: stream events live through the pipeline (the built-in simulator, or a
    Kafka topic with --source kafka://HOST:PORT).

    Serves Prometheus metrics on http://127.0.0.1:9469/metrics (metrics_host/metrics_port to
    change), logs every alert as a structured line, shows a live status line, and writes
    results to OUT when it stops (the same files replay writes). Ctrl-C or SIGTERM stops it
    cleanly. The default scenario, equity_drift, starts fair and withholds cheap compute from
    one team after 20,000 events.
    """
    settings = settings_for(config, metrics_port=metrics_port)
    if out.is_dir():  # another placewatch writing it: say so before joining a consumer group
        DirectoryLock(out).release()
    kafka = None
    if source.startswith("kafka://"):
        kafka = KafkaRun(settings, source, stop_when_idle, max_events)
    elif source != "simulator":
        raise PlacewatchError(f"--source: expected 'simulator' or kafka://HOST:PORT, got "
                              f"{source!r}")
    elif stop_when_idle is not None:
        raise PlacewatchError("--stop-when-idle: only with --source kafka://...")
    try:
        _run(settings, kafka, scenario, seed, speedup, max_events, revert_at, out)
    finally:
        if kafka is not None:
            kafka.close()


def _run(settings: Settings, kafka: KafkaRun | None, scenario: str, seed: int, speedup: float,
         max_events: int | None, revert_at: int | None, out: Path) -> None:
    if kafka is None and scenario not in SCENARIOS:
        raise PlacewatchError(f"--scenario: unknown {scenario!r}; valid: {', '.join(SCENARIOS)}")
    placewatch = create_app(settings, sinks=kafka.sinks if kafka is not None else ())
    placewatch.inputs = (kafka.inputs if kafka is not None
                         else [f"simulator:{scenario}:seed={seed}"])
    started = time.monotonic()
    if kafka is not None:
        log_event(_LOG, logging.INFO, "starting", source=kafka.inputs[0],
                  group=settings.kafka.group_id, settings=settings.source)
    else:
        log_event(_LOG, logging.INFO, "starting", scenario=scenario, seed=seed,
                  speedup=speedup, settings=settings.source)

    recent: collections.deque[tuple[float, int]] = collections.deque([(started, 0)])

    def rate(core: AuditCore) -> float:
        """Events per second over the last ~10 s (not the average since start)."""
        now = time.monotonic()
        recent.append((now, core.events_in))
        while len(recent) > 2 and now - recent[1][0] > 10:
            recent.popleft()
        then, count = recent[0]
        return (core.events_in - count) / max(now - then, 1e-9)

    def lag() -> int | None:
        return None if kafka is None else sum(kafka.source.figures()[0].values())

    def line(core: AuditCore) -> str:
        at = core.last_at.strftime("%Y-%m-%d %H:%M") if core.last_at else "-"
        behind = lag()
        return (f"[bold]placewatch[/] {core.events_in:,} events ({rate(core):,.0f}"
                f"/s)  placements {core.placements:,}  outcomes {core.outcomes:,}  rejected "
                f"{core.rejected:,}  audited {core.audited:,}  alerts [bold red]"
                f"{core.alerts_fired}[/]  " + (f"event time {at}" if behind is None
                                               else f"lag {behind:,}  event time {at}"))

    events: Iterable[Event]
    if kafka is not None:
        events = kafka.source  # --max-events is the source's own limit
    else:
        try:
            events = paced(scenario, seed, max_events, speedup, revert_at=revert_at)
        except ValueError as exc:
            raise PlacewatchError(f"--revert-at: {exc}") from exc
    show = not State.quiet and ERR.is_terminal
    with graceful_stop(placewatch), Live("", console=ERR, refresh_per_second=4,
                                      transient=True) if show else NoLive() as live:
        last = [0.0]

        def status(core: AuditCore) -> None:
            now = time.monotonic()
            if show and now - last[0] > 0.25:
                live.update(line(core))
                last[0] = now
            elif not show and now - last[0] > 10:
                extra = {} if kafka is None else {"consumer_lag": lag()}
                log_event(_LOG, logging.INFO, "status", events_in=core.events_in,
                          events_per_s=round(rate(core), 1), alerts_open=len(core.alert_book),
                          alerts=core.alerts_fired, audited=core.audited, **extra)
                last[0] = now

        summary = placewatch.run_live(events, out, status=status,
                                      consumer=kafka.source.figures if kafka else None)
    if not State.quiet:
        ERR.print(_summary_table(summary))


# -- config ---------------------------------------------------------------------------------

@config_app.command("show")
def config_show(config: ConfigOpt = None) -> None:
    """Print the effective settings (defaults < file < environment) as JSON, secrets redacted."""
    settings = settings_for(config)
    typer.echo(orjson.dumps(settings.redacted(), option=orjson.OPT_INDENT_2).decode())


def main() -> None:
    """Console-script entry point: user errors are one clear line and a non-zero exit."""
    try:
        app()
    except PlacewatchError as exc:
        ERR.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        ERR.print("interrupted")
        sys.exit(130)



