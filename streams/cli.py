"""The ``placewatch`` command line."""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from detectors.pipeline import AuditCore
from simulator import SCENARIOS, Simulation
from streams import bench as bench_mod
from streams import detection_bench
from streams.alibaba import DEFAULT_EPOCH, convert_pod_list
from streams.app import create_app, sigterm_as_interrupt
from streams.audit_store import published_head, verify_store
from streams.errors import PlacewatchError
from streams.logs import configure_logging, log_event
from streams.settings import Settings, load_settings
from streams.sources import check_inputs, count_lines, file_events, paced

__all__ = ["app", "main"]

_LOG = logging.getLogger("placewatch")
_ERR = Console(stderr=True)

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
)
import_app = typer.Typer(help="Convert public traces into v1 contract events.",
                         no_args_is_help=True)
audit_app = typer.Typer(help="Inspect and verify the audit store.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print their figures and a same-run baseline.",
                        no_args_is_help=True)
config_app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(audit_app, name="audit")
app.add_typer(bench_app, name="bench")
app.add_typer(config_app, name="config")


class _State:
    quiet = False
    log_format: str | None = None


ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", "-c", help="TOML configuration file (keys: docs/configuration.md). "
    "PLACEWATCH_* environment variables override it.", dir_okay=False)]


@app.callback()
def _root(
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Only warnings and errors; no progress bars.")] = False,
    log_format: Annotated[str | None, typer.Option(
        "--log-format", help="Log lines as 'text' or 'json' (default: setting log_format).")
    ] = None,
) -> None:
    _State.quiet = quiet
    _State.log_format = log_format


def _settings(config: Path | None, **overrides: object) -> Settings:
    extra = {k: v for k, v in overrides.items() if v is not None}
    if _State.log_format is not None:
        extra["log_format"] = _State.log_format
    settings = load_settings(config, overrides=extra)
    configure_logging(settings.log_format, settings.log_level, _State.quiet)
    return settings


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PlacewatchError(f"cannot create {path.parent}: {exc}") from exc


def _progress(total: int | None, what: str) -> Progress:
    return Progress(TextColumn(f"[bold]{what}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=_ERR, disable=_State.quiet, transient=False)


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
) -> None:
    """Write simulated scheduler events (v1 contract) and their ground truth.

    Scenarios: baseline (fair, stationary); equity_drift (a team's cheap-tier share falls
    ~20 points); forecast_bias (a team's runtimes under-forecast x1.5); feedback_loop (a
    team's delays feed its next deferrals); step_change (a one-off shift); preemption_
    concentration; override_leak (an override that never expires).
    """
    _settings(None)
    if scenario not in SCENARIOS:
        raise PlacewatchError(f"--scenario: unknown {scenario!r}; valid: {', '.join(SCENARIOS)}")
    truth = truth or out.with_name(out.name.removesuffix(".jsonl") + ".truth.json")
    sim = Simulation(SCENARIOS[scenario], events, seed)
    _make_parent(out)
    with out.open("wb") as handle, _progress(events, f"simulate {scenario}") as bar:
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
                                             dir_okay=False)],
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
    _settings(None)
    try:
        anchor = dt.datetime.fromisoformat(epoch.replace("Z", "+00:00"))
    except ValueError:
        raise PlacewatchError(f"--epoch: not an RFC 3339 time: {epoch!r}") from None
    if anchor.tzinfo is None:
        raise PlacewatchError("--epoch: needs a time zone (e.g. 2023-07-01T00:00:00Z)")
    events, rejected = convert_pod_list(pod_list, anchor)
    written = 0
    _make_parent(out)
    with out.open("wb") as handle, _progress(None, "import") as bar:
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
                                                "processed in this order.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the results.",
                                      file_okay=False)],
    config: ConfigOpt = None,
) -> None:
    """Run the whole pipeline over event files and write the contract's results to OUT.

    Writes alerts.jsonl, summary.json (counts and the fairness section), dead_letter.jsonl
    (every rejected event with its reason and original bytes), metrics.prom and the audit
    store audit.sqlite. The same input and configuration give byte-identical results.
    """
    settings = _settings(config)
    check_inputs(files)
    placewatch = create_app(settings)
    placewatch.inputs = [f.name for f in files]
    total = count_lines(files)
    with _progress(total, "replay") as bar:
        task = bar.add_task("events", total=total)
        summary = placewatch.replay(file_events(files), out,
                                    progress=lambda n: bar.advance(task, n))
    if not _State.quiet:
        _ERR.print(_summary_table(summary))


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
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for alerts, dead letters,"
                                      " the audit store and the final summary.",
                                      file_okay=False)] = Path("placewatch-data"),
    metrics_port: Annotated[int | None, typer.Option(help="Port of /metrics (default: setting "
                                                     "metrics_port, 9469; 0 picks a free one).")
                            ] = None,
) -> None:
    """The main job: stream the built-in simulator live through the pipeline.

    Serves Prometheus metrics on http://127.0.0.1:9469/metrics (metrics_host/metrics_port to
    change), logs every alert as a structured line, shows a live status line, and writes
    results to OUT when it stops. Ctrl-C or SIGTERM stops it cleanly. The default scenario,
    equity_drift, starts fair and withholds cheap compute from one team after 20,000 events.
    """
    settings = _settings(config, metrics_port=metrics_port)
    if scenario not in SCENARIOS:
        raise PlacewatchError(f"--scenario: unknown {scenario!r}; valid: {', '.join(SCENARIOS)}")
    placewatch = create_app(settings)
    placewatch.inputs = [f"simulator:{scenario}:seed={seed}"]
    started = time.monotonic()
    log_event(_LOG, logging.INFO, "starting", scenario=scenario, seed=seed, speedup=speedup,
              settings=settings.source)

    def line(core: AuditCore) -> str:
        elapsed = max(time.monotonic() - started, 1e-9)
        at = core.last_at.strftime("%Y-%m-%d %H:%M") if core.last_at else "-"
        return (f"[bold]placewatch[/] {core.events_in:,} events ({core.events_in / elapsed:,.0f}"
                f"/s)  placements {core.placements:,}  outcomes {core.outcomes:,}  rejected "
                f"{core.rejected:,}  audited {core.audited:,}  alerts [bold red]"
                f"{core.alerts_fired}[/]  sim time {at}")

    events = paced(scenario, seed, max_events, speedup)
    show = not _State.quiet and _ERR.is_terminal
    with sigterm_as_interrupt(), Live("", console=_ERR, refresh_per_second=4,
                                      transient=True) if show else _NoLive() as live:
        last = [0.0]

        def status(core: AuditCore) -> None:
            now = time.monotonic()
            if show and now - last[0] > 0.25:
                live.update(line(core))
                last[0] = now
            elif not show and now - last[0] > 10:
                log_event(_LOG, logging.INFO, "status", events_in=core.events_in,
                          alerts=core.alerts_fired, audited=core.audited)
                last[0] = now

        summary = placewatch.run_live(events, out, status=status)
    if not _State.quiet:
        _ERR.print(_summary_table(summary))


class _NoLive:
    def __enter__(self) -> _NoLive:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, _: str) -> None:
        return None


# -- audit ----------------------------------------------------------------------------------

@audit_app.command("verify")
def audit_verify(
    store: Annotated[Path, typer.Option(help="Audit store (audit.sqlite in a run directory).",
                                        dir_okay=False)],
    expect_head: Annotated[str | None, typer.Option(
        help="Head hash published outside the store (a log line, a report). Default: "
             "audit_head from summary.json beside the store, when there is one.")] = None,
) -> None:
    """Check the audit store's hash chain and its published head.

    Exit 0 when intact; 1 naming the first record that was changed, removed, reordered or
    inserted, or when the head differs from the published one (records removed from the end);
    4 when the store cannot be read.
    """
    _settings(None)
    anchor = "none"
    expect_records = None
    if expect_head is not None:
        anchor = "--expect-head"
    else:
        published = published_head(store)
        if published is not None:
            expect_records, expect_head = published
            anchor = str(store.parent / "summary.json")
    result = verify_store(store, expect_head, expect_records)
    if result.ok:
        typer.echo(f"OK: {result.records} records, head {result.head} (checked against: "
                   f"{anchor})")
        return
    typer.echo(f"TAMPERED: {result.problem}", err=True)
    raise typer.Exit(1)


# -- bench ----------------------------------------------------------------------------------

@bench_app.command("throughput")
def bench_throughput(
    events: Annotated[int, typer.Option(min=1000, help="Simulated events to push through.")
                      ] = 200_000,
    repeats: Annotated[int, typer.Option(min=1, help="Repeats per stage (best is kept).")] = 3,
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 1,
) -> None:
    """Events per second of the embedded pipeline vs a floor (orjson + dict counter), same run."""
    _settings(None)
    with _ERR.status(f"simulating {events:,} events") if not _State.quiet else _NoLive():
        lines = bench_mod.generate(events, seed)
    with _ERR.status("measuring") if not _State.quiet else _NoLive():
        results = bench_mod.run_throughput(lines, repeats)
    floor = results[0].rate
    table = Table(title=f"throughput, {events:,} events, best of {repeats}, one core")
    for column in ("stage", "events/s", "µs/event", "ratio to floor"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for r in results:
        table.add_row(r.name, f"{r.rate:,.0f}", f"{1e6 / r.rate:.2f}", f"{r.rate / floor:.1%}")
    console = Console(width=120)
    console.print(table)
    with _ERR.status("measuring memory per group") if not _State.quiet else _NoLive():
        per_group, groups = bench_mod.group_memory(lines)
    console.print(f"state per tracked group: {per_group / 1024:.1f} KiB (tracemalloc, {groups} "
                  "groups of one attribute, every watch warmed up); groups per attribute are "
                  "capped by max_groups_per_attribute (beyond it: the __other__ group and "
                  "placewatch_group_overflow_decisions_total)")


@bench_app.command("detection")
def bench_detection(
    seeds: Annotated[int, typer.Option(min=1, help="Seeds per scenario.")] = 20,
    events: Annotated[int, typer.Option(min=10_000, help="Events per run (the change is at "
                                        "40%).")] = 100_000,
    workers: Annotated[int, typer.Option(min=1, help="Processes.")] = 2,
    scenario: Annotated[list[str] | None, typer.Option(
        help="Only these scenarios (repeatable; default: all).")] = None,
) -> None:
    """Detection rate, delay and false alarms of the default detectors on every scenario.

    Each scenario runs over SEEDS seeds. Delays are counted in the affected group's own
    events (placements, or outcomes for forecasts) from the change to the first alert of the
    scenario's kind that names team=genomics and its metric. Alerts before the change, and all
    on baseline, are false alarms. The targets of issue 3 are checked at the end.
    """
    _settings(None)
    chosen = scenario or list(SCENARIOS)
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        raise PlacewatchError(f"--scenario: unknown {', '.join(unknown)}; valid: "
                              f"{', '.join(SCENARIOS)}")
    total = len(chosen) * seeds
    with _progress(total, "bench detection") as bar:
        task = bar.add_task("runs", total=total)
        scores = detection_bench.run_detection(chosen, seeds, events, workers,
                                               progress=lambda _: bar.advance(task))
    rows = detection_bench.summarise(scores)
    table = Table(title=f"detection quality: {seeds} seeds x {events:,} events per scenario")
    for column in ("scenario", "detected", "delay p50", "delay p90", "named first",
                   "amplification", "false alarms", "FA / M events (pre-change)",
                   "related", "side effects"):
        table.add_column(column, justify="left" if column == "scenario" else "right")

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f}"

    for r in rows:
        detected = "-" if r.scenario == "baseline" else f"{r.detected}/{r.runs}"
        named = "-" if r.scenario == "baseline" else f"{r.named_target_first}/{r.runs}"
        table.add_row(r.scenario, detected, fmt(r.delay_p50), fmt(r.delay_p90), named,
                      f"{r.amplification_on_target}/{r.runs}", str(r.false_alarms),
                      f"{r.false_alarms_per_million:.2f}", str(r.related), str(r.side_effects))
    console = Console(width=200)
    console.print(table)
    by_name = {r.scenario: r for r in rows}
    checks = []
    if "baseline" in by_name:
        b = by_name["baseline"]
        checks.append(("baseline: <= 1 false alarm per million events",
                       b.false_alarms_per_million <= 1.0,
                       f"{b.false_alarms} in {b.events:,} events"))
    if "equity_drift" in by_name:
        e = by_name["equity_drift"]
        checks.append(("equity_drift: detected within 400 group placements at p90, naming it",
                       e.detected == e.runs and (e.delay_p90 or 1e9) <= 400,
                       f"{e.detected}/{e.runs}, p90 {fmt(e.delay_p90)}"))
    if "forecast_bias" in by_name:
        f = by_name["forecast_bias"]
        checks.append(("forecast_bias: forecast_drift within 300 group outcomes at p90",
                       f.detected == f.runs and (f.delay_p90 or 1e9) <= 300,
                       f"{f.detected}/{f.runs}, p90 {fmt(f.delay_p90)}"))
    if "feedback_loop" in by_name:
        fl = by_name["feedback_loop"]
        checks.append(("feedback_loop: amplification in >= 90% of seeds",
                       fl.amplification_on_target >= 0.9 * fl.runs,
                       f"{fl.amplification_on_target}/{fl.runs}"))
    if "step_change" in by_name:
        st = by_name["step_change"]
        checks.append(("step_change: amplification in <= 5% of seeds",
                       st.amplification_on_target <= 0.05 * st.runs,
                       f"{st.amplification_on_target}/{st.runs}"))
    for text, ok, figure in checks:
        console.print(f"{'PASS' if ok else 'FAIL'}  {text}: {figure}")


# -- config ---------------------------------------------------------------------------------

@config_app.command("show")
def config_show(config: ConfigOpt = None) -> None:
    """Print the effective settings (defaults < file < environment) as JSON, secrets redacted."""
    settings = _settings(config)
    typer.echo(orjson.dumps(settings.redacted(), option=orjson.OPT_INDENT_2).decode())


def main() -> None:
    """Console-script entry point: user errors are one clear line and a non-zero exit."""
    try:
        app()
    except PlacewatchError as exc:
        _ERR.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _ERR.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()


