"""``placewatch audit``: verify, show, replay and export the audit trail (docs/audit.md)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import orjson
import typer

from streams.app import rederive_records
from streams.audit_store import (
    export_records,
    find_records,
    published_head,
    stored_bodies,
    verify_store,
)
from streams.cli_support import ConfigOpt, make_parent, settings_for
from streams.errors import PlacewatchError
from streams.logs import log_event
from streams.sources import check_inputs, file_events

__all__ = ["audit_app"]

_LOG = logging.getLogger("placewatch")

audit_app = typer.Typer(help="Inspect and verify the audit store.", no_args_is_help=True)


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
    settings_for(None)
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
        if expect_head is None:
            typer.echo("WARNING: no published head to check against (no summary.json naming "
                       "this store beside it, no --expect-head): records removed from the end "
                       "together with their checkpoints cannot be detected. Pass the head "
                       "from the run's summary or log with --expect-head.", err=True)
        return
    typer.echo(f"TAMPERED: {result.problem}", err=True)
    raise typer.Exit(1)


@audit_app.command("show")
def audit_show(
    decision_id: Annotated[str, typer.Argument(help="The decision whose audit record to show.",
                                               metavar="DECISION_ID")],
    store: Annotated[Path, typer.Option(help="Audit store (audit.sqlite in a run directory).",
                                        dir_okay=False)] = Path("placewatch-data/audit.sqlite"),
) -> None:
    """Show one decision's audit record: why it was sampled, the event, the state around it."""
    settings_for(None)
    found = find_records(store, decision_id)
    if not found:
        typer.echo(f"no audit record for decision {decision_id} in {store} (was it sampled?)",
                   err=True)
        raise typer.Exit(1)
    for entry in found:
        record = entry["record"]
        assert isinstance(record, dict)
        lines = [f"decision {record.get('decision_id')}  (record {entry['seq']} of the chain)",
                 f"  decided at      {record.get('decided_at')}",
                 f"  input position  event {record.get('event_index')}",
                 f"  sampled because {', '.join(record.get('sampled_because', []))} "
                 f"(draw {record.get('sample_draw')})",
                 f"  event sha256    {record.get('event_sha256')}",
                 f"  config hash     {record.get('config_hash')}",
                 f"  versions        {record.get('versions')}",
                 "  groups at the time:"]
        for attribute, state in (record.get("group_state") or {}).items():
            lines.append(f"    {attribute}={state.get('group')}: {state.get('decisions')} "
                         f"decisions, cheap-tier share {state.get('preferred_rate')}")
        lines += [f"  chain           prev {entry['prev_hash']}", f"                  "
                  f"this {entry['hash']}", "  event:", "    " + str(record.get("event"))]
        typer.echo("\n".join(lines))


@audit_app.command("replay")
def audit_replay(
    decisions: Annotated[list[str] | None, typer.Argument(
        help="Decisions to re-derive (default: every record in the store).",
        metavar="DECISION_ID")] = None,
    events: Annotated[list[Path] | None, typer.Option(
        "--events", "-e", help="The archived event files the run read, in order (repeat).",
        dir_okay=False)] = None,
    store: Annotated[Path, typer.Option(help="Audit store (audit.sqlite in a run directory).",
                                        dir_okay=False)] = Path("placewatch-data/audit.sqlite"),
    config: ConfigOpt = None,
) -> None:
    """Re-derive audit records from the archived events and check they are bit-identical.

    Runs the pipeline over the events with the given configuration, collects the audit
    records it writes, and compares them byte for byte with the store. Exit 0 when every
    requested record is reproduced; 1 naming each one that differs or is missing.
    """
    settings = settings_for(config)
    if not events:
        raise PlacewatchError("--events: give the event files the audited run read")
    check_inputs(events)
    stored = stored_bodies(store)
    wanted = decisions or list(stored)
    missing_here = [d for d in wanted if d not in stored]
    if missing_here:
        raise PlacewatchError(f"no audit record in {store} for: {', '.join(missing_here[:5])}")
    hashes = {orjson.loads(body).get("config_hash") for d in wanted for body in stored[d]}
    if hashes != {settings.config_hash}:
        raise PlacewatchError("the configuration differs from the audited run's (config_hash "
                              f"{', '.join(sorted(map(str, hashes)))} in the records, "
                              f"{settings.config_hash} now): pass the same --config and "
                              "PLACEWATCH_* settings")
    rederived = rederive_records(settings, file_events(events))
    bad = [d for d in wanted if rederived.get(d) != stored[d]]
    # a complete store holds every record the events produce (only when checking them all)
    absent = [] if decisions else [d for d in rederived if d not in stored]
    for decision in bad[:20]:
        reason = "not re-derived" if decision not in rederived else "differs"
        typer.echo(f"NOT REPRODUCED: {decision}: {reason}", err=True)
    for decision in absent[:20]:
        typer.echo(f"MISSING FROM STORE: {decision}: the events produce a record for it",
                   err=True)
    if bad or absent:
        typer.echo(f"{len(wanted) - len(bad)} of {len(wanted)} records reproduced; "
                   f"{len(absent)} missing from the store", err=True)
        raise typer.Exit(1)
    typer.echo(f"OK: {len(wanted)} of {len(wanted)} records reproduced bit-identically; the "
               "store is complete" if not decisions else
               f"OK: {len(wanted)} of {len(wanted)} records reproduced bit-identically")


@audit_app.command("export")
def audit_export(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON-lines file to write.",
                                      dir_okay=False)],
    store: Annotated[Path, typer.Option(help="Audit store (audit.sqlite in a run directory).",
                                        dir_okay=False)] = Path("placewatch-data/audit.sqlite"),
) -> None:
    """Export every audit record, with its chain hashes, as JSON lines for an outside auditor."""
    settings_for(None)
    make_parent(out)
    count = 0
    with out.open("wb") as handle:
        for line in export_records(store):
            handle.write(line)
            count += 1
    log_event(_LOG, logging.INFO, "exported", records=count, out=str(out))
