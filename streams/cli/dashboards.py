"""``placewatch dashboards``: regenerate, check and publish the Grafana dashboards."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from streams.cli.support import settings_for
from streams.errors import PlacewatchError
from streams.logs import log_event

__all__ = ["dashboards_app"]

_LOG = logging.getLogger("placewatch")
TOKEN_ENV = "GRAFANA_TOKEN"

dashboards_app = typer.Typer(help="Grafana dashboards: regenerate, check, publish "
                             "(dashboards/README.md).", no_args_is_help=True)


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
