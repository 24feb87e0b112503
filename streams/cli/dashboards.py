"""``placewatch dashboards``: regenerate, check, publish and draw the Grafana dashboards."""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Annotated

import typer

from streams.cli.support import settings_for
from streams.errors import PlacewatchError
from streams.logs import log_event

__all__ = ["dashboards_app"]

_LOG = logging.getLogger("placewatch")
TOKEN_ENV = "GRAFANA_TOKEN"

dashboards_app = typer.Typer(help="Grafana dashboards: regenerate, check, publish, draw "
                             "(dashboards/README.md).", no_args_is_help=True,
                             rich_markup_mode="markdown")


@dashboards_app.command("generate")
def dashboards_generate(
    check: Annotated[bool, typer.Option("--check", help="Only compare: exit 1 if the "
                                        "committed JSON differs from what the code builds.")
                     ] = False,
) -> None:
    """Write dashboards/json/*.json from dashboards/build.py (or check they are current)."""
    settings_for(None)
    from dashboards.build import main

    if main(["--check"] if check else []) != 0:
        raise typer.Exit(1)


@dashboards_app.command("publish")
def dashboards_publish(
    url: Annotated[str, typer.Option(help="Grafana's base URL, e.g. http://127.0.0.1:3000.")],
    token_file: Annotated[Path | None, typer.Option(
        help=f"File holding the service-account token (default: ${TOKEN_ENV}).",
        dir_okay=False)] = None,
    timeout: Annotated[float, typer.Option(min=1.0, help="Seconds per request.")] = 10.0,
) -> None:
    """Create the placewatch folder and upload every dashboard whose JSON differs from what
    Grafana holds; report created, updated or unchanged for each (a second run changes
    nothing)."""
    settings_for(None)
    from dashboards.publish import publish

    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise PlacewatchError(f"--token-file: cannot read {token_file}: "
                                  f"{exc.strerror or exc}") from exc
    else:
        token = os.environ.get(TOKEN_ENV, "")
    for change in publish(url, token, timeout):
        typer.echo(f"{change.change:<9} {change.uid}  ({change.title})")
        log_event(_LOG, logging.DEBUG, "dashboard published", uid=change.uid,
                  change=change.change)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(s|m|h|d)")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(text: str, option: str) -> float:
    match = _DURATION.fullmatch(text.strip())
    if match is None or float(match[1]) <= 0:
        raise PlacewatchError(f"{option}: {text!r} is not a duration such as 90s, 15m, 6h or 1d")
    return float(match[1]) * _SECONDS[match[2]]


@dashboards_app.command("render")
def dashboards_render(
    prometheus: Annotated[str, typer.Option(
        help="Prometheus's base URL, e.g. http://127.0.0.1:9090 (it must scrape placewatch).")],
    out: Annotated[Path, typer.Option(help="Directory for one PNG per dashboard, named by "
                                      "its uid.", file_okay=False)],
    time_range: Annotated[str, typer.Option(
        "--range", help="How far back the time-series panels reach (90s, 15m, 6h, 1d); also "
        "Grafana's $__range.")] = "1h",
    scrape_interval: Annotated[str, typer.Option(
        help="Prometheus's scrape interval, for $__rate_interval.")] = "15s",
    var: Annotated[list[str] | None, typer.Option(
        help="Set a template variable, NAME=VALUE (repeatable), e.g. attribute=team or "
        "compare=1d.")] = None,
    dashboard: Annotated[list[str] | None, typer.Option(
        help="Only this dashboard uid (repeatable; default: all three).")] = None,
    require_data: Annotated[bool, typer.Option(
        "--require-data", help="Exit 1 if any panel's queries returned no series with a "
        "finite value, or a panel could not be drawn.")] = False,
    timeout: Annotated[float, typer.Option(min=1.0, help="Seconds per query.")] = 30.0,
) -> None:
    """Draw each dashboard's panels from its own queries against a live Prometheus into a
    PNG (matplotlib, Grafana's grid and dark theme): what a viewer would see over the last
    --range, without a Grafana server. Prints each picture and the panels that had no data."""
    settings_for(None)
    from dashboards.pictures import boards, render_dashboard
    from dashboards.prometheus import Prometheus

    chosen: dict[str, str] = {}
    for item in var or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise PlacewatchError(f"--var: {item!r} is not NAME=VALUE")
        chosen[name.strip()] = value
    span = _seconds(time_range, "--range")
    scrape = _seconds(scrape_interval, "--scrape-interval")
    client = Prometheus(prometheus, timeout)
    end = time.time()
    empty_panels = 0
    for board in boards(dashboard or ()):
        done = render_dashboard(board, client, out / f"{board['uid']}.png", end - span, end,
                                scrape, chosen)
        empty, failed = done.empty, done.failed
        empty_panels += len(empty) + len(failed)
        typer.echo(f"{done.path}  {len(done.panels) - len(empty) - len(failed)} of "
                   f"{len(done.panels)} panels with data"
                   + (f"; no data: {'; '.join(empty)}" if empty else "")
                   + (f"; could not draw: {'; '.join(failed)}" if failed else ""))
        log_event(_LOG, logging.DEBUG, "dashboard rendered", uid=done.uid, path=str(done.path),
                  empty=len(empty))
    if require_data and empty_panels:
        raise typer.Exit(1)
