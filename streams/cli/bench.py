"""``placewatch bench``: benchmarks that print their figures and a baseline from the same run."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from simulator import SCENARIOS
from streams.bench import audit as audit_bench
from streams.bench import detection as detection_bench
from streams.bench import throughput as bench_mod
from streams.cli.support import ERR, NoLive, progress, quiet, settings_for
from streams.errors import PlacewatchError

__all__ = ["bench_app"]

bench_app = typer.Typer(help="Benchmarks that print their figures and a same-run baseline.",
                        no_args_is_help=True, rich_markup_mode="markdown")


@bench_app.command("throughput")
def bench_throughput(
    events: Annotated[int, typer.Option(min=1000, help="Simulated events to push through.")
                      ] = 200_000,
    repeats: Annotated[int, typer.Option(min=1, help="Repeats per stage (best is kept).")] = 3,
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 1,
    replay: Annotated[bool, typer.Option(
        help="Also time `placewatch replay` as a whole (file in, audits on, every output).")
                      ] = True,
    sparse_groups: Annotated[list[int] | None, typer.Option(
        min=1, help="The scaling run: also time the full core with a 'project' attribute of "
                    "this many values on every placement (repeatable, e.g. 200 and 1225; "
                    "the simulator's own attributes make 19 groups).")] = None,
) -> None:
    """Events per second of the embedded pipeline vs a floor (orjson + dict counter), same run.

    Stages: the floor; ingest (decode, validate, dedup, join); the full core as configured by
    default (the audit work it queues, not the audits); and `replay` as a whole command with
    its deep audits inline. Targets, as a share of the same run's floor: the full core >= 25%,
    replay >= 20%. Exits 1 on a miss. With --sparse-groups, the full core again with that
    many more groups (no target: the ratio to the 19-group core is printed).
    """
    settings_for(None)
    with ERR.status(f"simulating {events:,} events") if not quiet() else NoLive():
        lines = bench_mod.generate(events, seed)
    with ERR.status("measuring") if not quiet() else NoLive():
        results = bench_mod.run_throughput(lines, repeats, replay=replay,
                                           sparse_groups=tuple(sparse_groups or ()))
    floor = results[0].rate
    table = Table(title=f"throughput, {events:,} events, best of {repeats}, one core")
    for column in ("stage", "events/s", "µs/event", "ratio to floor"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for r in results:
        table.add_row(r.name, f"{r.rate:,.0f}", f"{1e6 / r.rate:.2f}", f"{r.rate / floor:.1%}")
    console = Console(width=120)
    console.print(table)
    with ERR.status("measuring memory per group") if not quiet() else NoLive():
        per_group, groups = bench_mod.group_memory(lines)
    console.print(f"state per tracked group: {per_group / 1024:.1f} KiB (tracemalloc, {groups} "
                  "groups of one attribute, every watch warmed up); groups per attribute are "
                  "capped by max_groups_per_attribute (beyond it: the __other__ group and "
                  "placewatch_group_overflow_decisions_total)")
    core_rate = next(r.rate for r in results if r.name == bench_mod.FULL_STAGE)
    for groups in sparse_groups or ():
        scaled = next(r for r in results if r.name == bench_mod.sparse_stage(groups))
        console.print(f"scaling: with {groups:,} more groups the full core runs at "
                      f"{scaled.rate / core_rate:.0%} of its rate with the simulator's 19")
    checks = bench_mod.verdicts(results)
    for _, line in checks:
        console.print(line)
    if not all(met for met, _ in checks):
        raise typer.Exit(1)


@bench_app.command("audit")
def bench_audit(
    events: Annotated[int, typer.Option(min=5000, help="Simulated events to push through.")
                      ] = 100_000,
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 1,
    scenario: Annotated[str, typer.Option(help="Simulator scenario.")] = "equity_drift",
    backlog: Annotated[int, typer.Option(min=1, help="Deep-audit backlog of the worker.")
                       ] = 1000,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds (the median ratio is judged).")
                      ] = 3,
) -> None:
    """Decision-path latency with deep audits on versus off (same run), and the deep audit's
    own cost per sampled decision. Targets: <= 8% added at p99; <= 1 ms per deep audit at p99.
    Exits 1 on a miss.
    """
    settings_for(None)
    if scenario not in SCENARIOS:
        raise PlacewatchError(f"--scenario: unknown {scenario}; valid: {', '.join(SCENARIOS)}")
    with ERR.status(f"simulating {events:,} events") if not quiet() else NoLive():
        lines = bench_mod.generate(events, seed, scenario)
    results = []
    with ERR.status("measuring") if not quiet() else NoLive(), \
            tempfile.TemporaryDirectory() as scratch:
        for round_ in range(rounds):
            results.append(audit_bench.run_audit_bench(
                lines, Path(scratch) / f"audit{round_}.sqlite", backlog=backlog))
    table = Table(title=f"decision-path latency per event (µs), {events:,} events ({scenario}), "
                        "audit off vs on (worker process), interleaved in one run")
    for column in ("round", "off p50", "on p50", "off p99", "on p99", "p99 on/off",
                   "off p99.9", "on p99.9", "off mean", "on mean", "off max", "on max"):
        table.add_column(column, justify="right")
    ratios = []
    for number, result in enumerate(results, start=1):
        off = result.quantiles(result.off_ns)
        on = result.quantiles(result.on_ns)
        ratios.append(on[1] / off[1])
        table.add_row(str(number), f"{off[0]:.2f}", f"{on[0]:.2f}", f"{off[1]:.2f}",
                      f"{on[1]:.2f}", f"{on[1] / off[1]:.3f}", f"{off[2]:.0f}", f"{on[2]:.0f}",
                      f"{off[3]:.2f}", f"{on[3]:.2f}", f"{off[4]:,.0f}", f"{on[4]:,.0f}")
    console = Console(width=160)
    console.print(table)
    for number, result in enumerate(results, start=1):
        spans = [f"gen{g} {len(d)} (longest {max(d, default=0) / 1e6:.1f} ms)"
                 for g, d in result.collections_ns.items()]
        console.print(f"round {number}: garbage collections during the loop: "
                      f"{', '.join(spans)}")
    last = results[-1]
    explain = last.quantiles(np.concatenate([r.explain_ns for r in results]))
    console.print(f"deep audit per sampled decision ({len(last.explain_ns):,} per round): "
                  f"p50 {explain[0]:.0f} µs, p99 {explain[1]:.0f} µs, p99.9 {explain[2]:.0f} "
                  f"µs; audited {last.audited:,}; deferred {sum(r.deferred for r in results)}, "
                  f"training examples skipped {sum(r.training_skipped for r in results)} "
                  "(all rounds)")
    added = float(np.median(ratios)) - 1
    console.print(f"{'PASS' if added <= 0.08 else 'FAIL'}  audit adds <= 8% at p99 (median of "
                  f"{rounds} rounds): {added:+.1%}")
    console.print(f"{'PASS' if explain[1] <= 1000 else 'FAIL'}  deep audit <= 1 ms at p99: "
                  f"{explain[1]:.0f} µs (stretch 50 µs: "
                  f"{'met' if explain[1] <= 50 else 'not met'})")
    if added > 0.08 or explain[1] > 1000:
        raise typer.Exit(1)


@bench_app.command("detection")
def bench_detection(
    seeds: Annotated[int, typer.Option(min=1, help="Seeds per scenario.")] = 20,
    events: Annotated[int, typer.Option(min=10_000, help="Events per run (the change is at "
                                        "40%).")] = 100_000,
    workers: Annotated[int, typer.Option(min=1, help="Processes.")] = 2,
    scenario: Annotated[list[str] | None, typer.Option(
        help="Only these rows (repeatable; default: all): the simulator's scenarios, and "
             "scheduling_equity (the wait_drift stream scored on that alert).")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Benchmark this configuration (TOML) instead of the defaults.",
        dir_okay=False)] = None,
    peers: Annotated[bool, typer.Option(
        help="Also run River's ADWIN and Page-Hinkley (defaults and one tuned setting each) in "
             "place of the CUSUM on baseline, equity_drift and feedback_loop, and check that "
             "none of them is both as fast and as quiet as placewatch.")] = True,
    sparse_groups: Annotated[int, typer.Option(
        min=0, help="The scaling run: add a 'project' attribute with this many values to "
                    "every placement (sparse groups, all tracked), to check that groups "
                    "still warming up do not slow detection of the others (groups that "
                    "finish warming up can alarm, and share the false-alarm budget). "
                    "0: none.")] = 0,
) -> None:
    """Detection rate, delay and false alarms of the default detectors on every scenario,
    next to River's drift detectors on the same streams.

    Each scenario runs over SEEDS seeds. Delays are counted in the affected group's own
    events (placements, or outcomes for forecasts) from the change to the first alert of the
    scenario's kind that names team=genomics and its metric. Alerts before the change, and all
    on baseline, are false alarms.

    Columns: detected (runs with a hit), delay p50/p90 (of the hits), named first (runs whose
    first alert of the kind named the team), amplification (runs with an amplification alert
    on the team), false alarms and their rate per million pre-change events, related (alerts
    on groups holding the team's jobs) and side effects (alerts on other groups after the
    change). With --peers, the rows of each River setting follow placewatch's. The targets are
    checked at the end; exits 1 on a miss. The row scheduling_equity scores the wait_drift
    stream on the scheduling-equity alert instead. Rows without a target (slow_drift,
    preemption_concentration, standing_disparity, override_leak) are reported only.
    """
    settings = settings_for(config)
    chosen = scenario or list(detection_bench.ROWS)
    unknown = [s for s in chosen if s not in detection_bench.ROWS]
    if unknown:
        raise PlacewatchError(f"--scenario: unknown {', '.join(unknown)}; valid: "
                              f"{', '.join(detection_bench.ROWS)}")
    if peers and settings.core.drift_detector != "cusum":
        raise PlacewatchError(f"--peers compares River's detectors with placewatch's cusum, "
                              f"but the configuration sets drift_detector = "
                              f"{settings.core.drift_detector!r}: pass --no-peers")
    rivals = list(detection_bench.PEERS) if peers else []
    total = seeds * (len(chosen) + len(rivals) * sum(
        s in detection_bench.PEER_SCENARIOS for s in chosen))
    with progress(total, "bench detection") as bar:
        task = bar.add_task("runs", total=total)
        scores = detection_bench.run_detection(chosen, seeds, events, workers,
                                               progress=lambda _: bar.advance(task),
                                               config=settings.core, peers=rivals,
                                               sparse_groups=sparse_groups)
    rows = detection_bench.summarise(scores)
    sparse = (f", {sparse_groups:,} sparse '{detection_bench.SPARSE_ATTRIBUTE}' groups added"
              if sparse_groups else "")
    table = Table(title=f"detection quality: {seeds} seeds x {events:,} events per "
                        f"scenario{sparse}")
    for column in ("scenario", "detector", "detected", "delay p50", "delay p90",
                   "named first", "amplification", "false alarms",
                   "FA / M events (pre-change)", "related", "side effects"):
        table.add_column(column, justify="left" if column in ("scenario", "detector")
                         else "right")

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f}"

    for r in sorted(rows, key=lambda r: (chosen.index(r.scenario), r.detector
                                         != detection_bench.OWN)):
        detected = "-" if r.scenario == "baseline" else f"{r.detected}/{r.runs}"
        named = "-" if r.scenario == "baseline" else f"{r.named_target_first}/{r.runs}"
        table.add_row(r.scenario, r.detector, detected, fmt(r.delay_p50), fmt(r.delay_p90),
                      named, f"{r.amplification_on_target}/{r.runs}", str(r.false_alarms),
                      "-" if r.events == 0 else f"{r.false_alarms_per_million:.2f}",
                      str(r.related), str(r.side_effects))
    console = Console(width=220)
    console.print(table)
    by_name = {r.scenario: r for r in rows if r.detector == detection_bench.OWN}
    checks = []
    for line in detection_bench.peer_comparison(rows):
        console.print(line)
    verdict = detection_bench.peer_verdict(rows)
    if verdict is not None:
        checks.append(("equity_drift: no River setting finds as often, as fast (p90) and "
                       "with as few baseline false alarms as placewatch", *verdict))
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
    if "wait_drift" in by_name:
        w = by_name["wait_drift"]
        checks.append(("wait_drift: detected within 300 group placements at p90",
                       w.detected == w.runs and (w.delay_p90 or 1e9) <= 300,
                       f"{w.detected}/{w.runs}, p90 {fmt(w.delay_p90)}"))
    if "scheduling_equity" in by_name:
        q = by_name["scheduling_equity"]
        checks.append(("scheduling_equity: the wait_drift stream's x1.5 waits found, naming "
                       "the team first", q.detected == q.runs and q.named_target_first == q.runs,
                       f"{q.detected}/{q.runs}, named first {q.named_target_first}/{q.runs}, "
                       f"p90 {fmt(q.delay_p90)}"))
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
    if not all(ok for _, ok, _ in checks):
        raise typer.Exit(1)


@bench_app.command("alerts")
def bench_alerts(
    groups: Annotated[int, typer.Option(min=1, help="Tracked teams in the scrape benchmark.")
                      ] = 1000,
    events: Annotated[int, typer.Option(min=1000, help="Events through the live delivery "
                                        "benchmark.")] = 30_000,
    rate: Annotated[float, typer.Option(min=1.0, help="Events per second it is paced at.")
                    ] = 2000.0,
    probe_every: Annotated[int, typer.Option(min=1, help="Every Nth placement carries an "
                                             "expired override (one alert each).")] = 50,
) -> None:
    """Scrape cost with GROUPS tracked teams vs an empty scrape (same run), and alert latency
    from an event's arrival to Alertmanager on the direct path, through a live run with its
    durable outbox. Targets: a scrape <= 100 ms; delivery p99 <= 1 s. Exits 1 on a miss."""
    settings_for(None)
    from streams.bench import alerting

    with ERR.status(f"scraping {groups:,} groups") if not quiet() else NoLive():
        scrape = alerting.scrape_cost(groups)
    with ERR.status(f"delivering alerts from {events:,} events at {rate:,.0f}/s"
                    ) if not quiet() else NoLive():
        delivery = alerting.delivery_latency(events, rate, probe_every)
    console = Console(width=120)
    console.print(f"scrape: {scrape.groups:,} teams + 4 regions, {scrape.series:,} series: "
                  f"median {scrape.loaded_s * 1000:.1f} ms; empty core "
                  f"{scrape.empty_s * 1000:.2f} ms "
                  f"(ratio {scrape.loaded_s / scrape.empty_s:,.0f}x)")
    if not delivery.latencies_s:
        raise PlacewatchError("no probe alert reached the receiver")
    console.print(f"delivery: {delivery.delivered}/{delivery.probes} probe alerts from "
                  f"{delivery.events:,} events in {delivery.seconds:.1f} s; event read to "
                  f"accepted by the Alertmanager stand-in: p50 "
                  f"{delivery.quantile(0.5) * 1000:.0f} ms, p99 "
                  f"{delivery.quantile(0.99) * 1000:.0f} ms, max "
                  f"{max(delivery.latencies_s) * 1000:.0f} ms")
    checks = [("scrape with the groups <= 100 ms", scrape.loaded_s <= 0.1,
               f"{scrape.loaded_s * 1000:.1f} ms"),
              ("every probe alert delivered", delivery.delivered == delivery.probes,
               f"{delivery.delivered}/{delivery.probes}"),
              ("event read to accepted p99 <= 1 s", delivery.quantile(0.99) <= 1.0,
               f"{delivery.quantile(0.99) * 1000:.0f} ms")]
    for text, ok, figure in checks:
        console.print(f"{'PASS' if ok else 'FAIL'}  {text}: {figure}")
    if not all(ok for _, ok, _ in checks):
        raise typer.Exit(1)
    if not all(ok for _, ok, _ in checks):
        raise typer.Exit(1)


@bench_app.command("kafka")
def bench_kafka(
    events: Annotated[int, typer.Option(min=1000, help="Simulated events written to the test "
                                        "broker.")] = 100_000,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions of the events topic.")
                          ] = 4,
) -> None:
    """Events per second through a whole worker (run --source kafka://: sequencer, core, deep
    audits in their process, fsynced run directory, effects produced to their topics, commits)
    against a bare aiokafka getmany loop over the same messages, on the test broker
    (librdkafka's mock cluster; needs pip install '.[test]'). Target: >= 30,000 events/s.
    Exits 1 on a miss."""
    settings_for(None)
    from streams.bench import kafka as kafka_bench

    with ERR.status(f"{events:,} events through Kafka") if not quiet() else NoLive():
        result = kafka_bench.kafka_throughput(events, partitions)
    console = Console(width=120)
    console.print(f"{result.events:,} events over {result.partitions} partitions")
    console.print(f"bare aiokafka getmany: {result.bare_rate:,.0f} events/s")
    console.print(f"placewatch worker:     {result.placewatch_rate:,.0f} events/s "
                  f"({result.placewatch_rate / result.bare_rate:.1%} of bare); audited "
                  f"{result.summary['audited']:,}, deferred {result.summary['audit_deferred']:,},"
                  f" alerts {result.summary['alerts']}")
    ok = result.placewatch_rate >= 30_000
    console.print(f"{'PASS' if ok else 'FAIL'}  a worker end to end >= 30,000 events/s: "
                  f"{result.placewatch_rate:,.0f}")
    if not ok:
        raise typer.Exit(1)


@bench_app.command("report")
def bench_report(
    groups: Annotated[int, typer.Option(min=2, help="Groups in the many-groups week.")] = 3000,
    events: Annotated[int, typer.Option(min=1000, help="Events of the simulated week.")
                      ] = 60_000,
) -> None:
    """Render time of the weekly report on an empty week (the baseline: the renderer's fixed
    cost), a simulated week with no findings, and a week of GROUPS groups (14 days of hourly
    history). Target: each within 30 s. Exits 1 on a miss."""
    settings_for(None)
    from streams.bench import report as report_bench

    with ERR.status("rendering three weeks") if not quiet() else NoLive():
        timings = report_bench.report_times(groups, events)
    console = Console(width=120)
    base = timings[0].seconds
    for timing in timings:
        console.print(f"{timing.name}: {timing.seconds:.1f} s ({timing.seconds / base:.1f}x "
                      f"the empty week; {timing.detail})")
    ok = all(t.seconds <= 30 for t in timings)
    console.print(f"{'PASS' if ok else 'FAIL'}  every week within 30 s: slowest "
                  f"{max(t.seconds for t in timings):.1f} s")
    if not ok:
        raise typer.Exit(1)


@bench_app.command("hostile")
def bench_hostile(
    scale: Annotated[float, typer.Option(min=0.01, max=1.0, help="Size of every case against "
                                         "the original report's (1: a 400 MB line, 1,000 "
                                         "placements of 900 KB, 1,000 job classes of 900 KB, "
                                         "40,000 and 100,000 events).")] = 1.0,
    workdir: Annotated[Path | None, typer.Option(help="Where the inputs are written (about "
                                                 "2.6 GB at scale 1; default: a temporary "
                                                 "directory, removed after).")] = None,
) -> None:
    """Peak memory and time of replay on valid but hostile inputs, each in a process of its
    own, against a clean input of the same size in the same run.

    Columns: *case*; *input* (MiB written); *seconds* (wall, whole process); *peak MiB*
    (resident); *vs clean* (peak minus the clean run's peak, and time as a multiple of the
    clean run's). Targets: every case's peak within the memory budget over the clean peak
    (join_max_mb + reorder_max_mb + 128 MiB, docs/configuration.md "Memory"); the huge line
    within 64 MiB of it; the stream of a new team on every event within 2x the time of four
    teams. Exits 1 on a miss."""
    settings = settings_for(None)
    from streams.bench import hostile

    budget = hostile.memory_budget_mib(settings.core.join_max_mb, settings.core.reorder_max_mb)
    results: dict[str, tuple[int, hostile.Measured]] = {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp, \
            progress(len(hostile.CASES), "hostile cases") as bar:
        task = bar.add_task("cases", total=len(hostile.CASES))
        for case in hostile.CASES:
            events = Path(tmp) / f"{case.name}.jsonl"
            size = hostile.write_case(case, scale, events)
            results[case.name] = (size, hostile.replay_measured(events, Path(tmp) / case.name))
            events.unlink()
            bar.advance(task)
    table = Table(title=f"replay on hostile input, scale {scale:g}")
    for column in ("case", "input MiB", "seconds", "peak MiB", "vs clean"):
        table.add_column(column, justify="left" if column == "case" else "right")
    clean_of = {"keys": "clean-40k", "teams": "clean-100k", "big": "clean-40k",
                "classes": "clean-40k", "huge-line": "clean-100"}
    checks: list[tuple[bool, str]] = []
    for case in hostile.CASES:
        size, measured = results[case.name]
        clean = results.get(clean_of.get(case.name, ""), (0, None))[1]
        versus = "" if clean is None else (
            f"{measured.peak_mib - clean.peak_mib:+,.0f} MiB, "
            f"{measured.seconds / clean.seconds:.2f}x time")
        table.add_row(case.name, f"{size / 2**20:,.0f}", f"{measured.seconds:.1f}",
                      f"{measured.peak_mib:,.0f}", versus)
        if clean is None:
            continue
        extra = measured.peak_mib - clean.peak_mib
        limit = 64 if case.name == "huge-line" else budget
        checks.append((extra <= limit, f"{case.name}: peak {extra:+,.0f} MiB over clean "
                                       f"(budget {limit:,} MiB)"))
        if case.name == "teams":
            ratio = measured.seconds / clean.seconds
            checks.append((ratio <= 2.0, f"teams: {ratio:.2f}x the time of four teams "
                                         "(target <= 2x)"))
    console = Console(width=120)
    console.print(table)
    keys = results["keys"][1].summary
    console.print(f"keys: the audit models named {keys.get('shadow_features')} feature "
                  f"columns and folded {keys.get('shadow_features_folded'):,} into overflow "
                  f"columns; big: {results['big'][1].summary.get('unmatched_placements'):,} "
                  "placements released unmatched to keep the join within join_max_mb")
    for ok, text in checks:
        console.print(f"{'PASS' if ok else 'FAIL'}  {text}")
    if not all(ok for ok, _ in checks):
        raise typer.Exit(1)
