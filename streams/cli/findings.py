"""``placewatch findings``: the cases behind the alerts: list, show, acknowledge, resolve."""

from __future__ import annotations

import datetime as dt
import getpass
import logging
import time
from contextlib import closing as _closing
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from streams.cli.support import settings_for
from streams.errors import PlacewatchError
from streams.findings import Finding, FindingsStore
from streams.logs import log_event

__all__ = ["findings_app"]

_LOG = logging.getLogger("placewatch")

findings_app = typer.Typer(
    help="Findings: every alert as a case, from detection to remediation (docs/alerts.md).",
    no_args_is_help=True, rich_markup_mode="markdown")

DataOpt = Annotated[Path, typer.Option(
    "--data", "-d", help="Run directory (the --out of `run` or `replay`).", file_okay=False)]
IdArg = Annotated[int, typer.Argument(help="Finding ID (from `placewatch findings list`).",
                                      min=1)]
ByOpt = Annotated[str | None, typer.Option(help="Who (default: your login name).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per finding.")]


def _store(data: Path) -> FindingsStore:
    settings_for(None)
    return FindingsStore(data / "findings.sqlite", create=False)


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError) as exc:  # no login name (a container without /etc/passwd)
        raise PlacewatchError("cannot tell who you are: pass --by NAME") from exc


def _age(finding: Finding) -> str:
    seconds = finding.remediation_age_s
    if seconds is None:
        return "open " + _span(time.time() - finding.recorded_at)
    return _span(seconds)


def _span(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _wall(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


@findings_app.command("list")
def findings_list(
    data: DataOpt = Path("placewatch-data"),
    state: Annotated[str, typer.Option(help="open (not resolved), resolved, or all.")
                     ] = "open",
    as_json: JsonOpt = False,
) -> None:
    """List findings, newest first: state, severity, who is affected, when detected, and
    remediation age (how long it took, or how long it has been open)."""
    if state not in ("open", "resolved", "all"):
        raise PlacewatchError(f"--state: must be open, resolved or all, got {state!r}")
    with _closing(_store(data)) as store:
        found = store.list(None if state == "all" else state)
    if as_json:
        for finding in found:
            typer.echo(orjson.dumps(finding.as_dict()).decode())
        return
    label = "" if state == "all" else f" {state}"
    table = Table(title=f"{len(found)}{label} findings in {data}")
    for column in ("id", "state", "severity", "alert", "population", "metric",
                   "detected (event time)", "remediation age"):
        table.add_column(column)
    for f in found:
        population = f"{f.attribute}={f.grp}" if f.attribute else "-"
        table.add_row(str(f.id), f.state, f.severity, f.alert, escape(population), f.metric,
                      f.detected_at, _age(f))
    Console(width=160).print(table)


@findings_app.command("show")
def findings_show(finding_id: IdArg, data: DataOpt = Path("placewatch-data"),
                  as_json: JsonOpt = False) -> None:
    """Everything about one finding: what was detected, on which decision, who acknowledged
    and resolved it, with their notes."""
    with _closing(_store(data)) as store:
        finding = store.get(finding_id)
    if as_json:
        typer.echo(orjson.dumps(finding.as_dict(), option=orjson.OPT_INDENT_2).decode())
        return
    f = finding
    lines = [
        f"finding {f.id}: {f.alert} ({f.severity}), {f.state}",
        f"  population   {f.attribute}={f.grp}" if f.attribute else "  population   -",
        f"  metric       {f.metric}",
        f"  summary      {f.summary}",
        f"  detected     {f.detected_at} (event time) on decision {f.detected_decision_id} "
        f"(event {f.detected_event_index}); fingerprint {f.fingerprint}",
        f"  recorded     {_wall(f.recorded_at)}",
        f"  acknowledged {_wall(f.acknowledged_at)}"
        + (f" by {f.acknowledged_by}" if f.acknowledged_by else "")
        + (f": {f.ack_note}" if f.ack_note else ""),
        f"  resolved     {f.resolved_at or '-'}" + (f" by {f.resolved_by}" if f.resolved_by
                                                    else "")
        + (f": {f.resolve_note}" if f.resolve_note else ""),
        f"  remediation  {_age(f)}",
    ]
    if f.detector_resolved_at and f.resolved_by != "detector":
        lines.append(f"  detector saw it clear at {f.detector_resolved_at} (event time)")
    typer.echo("\n".join(lines))


@findings_app.command("ack")
def findings_ack(finding_id: IdArg, data: DataOpt = Path("placewatch-data"), by: ByOpt = None,
                 note: Annotated[str | None, typer.Option(help="What you are doing about it."
                                                          )] = None) -> None:
    """Acknowledge a finding: someone owns it now (the alert keeps firing until the detector
    sees the condition clear; silence it in Alertmanager if it should not page)."""
    who = _who(by)
    with _closing(_store(data)) as store:
        finding = store.acknowledge(finding_id, who, note)
    log_event(_LOG, logging.INFO, "finding acknowledged", id=finding.id, by=who,
              alert=finding.alert, fingerprint=finding.fingerprint)
    typer.echo(f"finding {finding.id} acknowledged by {who}")


@findings_app.command("resolve")
def findings_resolve(
    finding_id: IdArg,
    note: Annotated[str, typer.Option(help="What was done (kept with the finding for reviewers).")],
    data: DataOpt = Path("placewatch-data"),
    by: ByOpt = None,
) -> None:
    """Resolve a finding by hand: it was remediated. Its remediation age is the time since it
    was recorded; the detector's own resolution, when it comes, is noted beside it."""
    if not note.strip():
        raise PlacewatchError("--note: say what was done")
    who = _who(by)
    with _closing(_store(data)) as store:
        finding = store.resolve(finding_id, who, note)
    log_event(_LOG, logging.INFO, "finding resolved", id=finding.id, by=who,
              alert=finding.alert, fingerprint=finding.fingerprint,
              remediation_age_s=finding.remediation_age_s)
    typer.echo(f"finding {finding.id} resolved by {who} after {_age(finding)}")

