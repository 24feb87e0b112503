"""What every ``placewatch`` command shares: global options, settings, console, progress bars."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from streams.errors import PlacewatchError
from streams.logs import configure_logging
from streams.settings import Settings, load_settings

__all__ = ["ERR", "ConfigOpt", "NoLive", "State", "make_parent", "progress", "quiet",
           "settings_for"]

ERR = Console(stderr=True)
"""Progress, status and errors go to stderr; results to stdout."""


ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", "-c", help="TOML configuration file (keys: docs/configuration.md). "
    "PLACEWATCH_* environment variables override it.", dir_okay=False)]


def make_parent(path: Path) -> None:
    """Create the directory a file will be written into, or say clearly why not."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PlacewatchError(f"cannot create {path.parent}: {exc}") from exc


class State:
    """The global options of this invocation (``--quiet``, ``--log-format``)."""

    quiet = False
    log_format: str | None = None


def quiet() -> bool:
    """Whether ``--quiet`` was given."""
    return State.quiet


def settings_for(config: Path | None, **overrides: object) -> Settings:
    """Load settings (file < environment < command-line overrides) and set up logging."""
    extra = {k: v for k, v in overrides.items() if v is not None}
    if State.log_format is not None:
        extra["log_format"] = State.log_format
    settings = load_settings(config, overrides=extra)
    configure_logging(settings.log_format, settings.log_level, State.quiet)
    return settings


def progress(total: int | None, what: str) -> Progress:
    """A progress bar on stderr (hidden by ``--quiet``)."""
    return Progress(TextColumn(f"[bold]{what}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=ERR, disable=State.quiet, transient=False)


class NoLive:
    """Stands in for a rich ``Live`` or ``status`` display when none is wanted."""

    def __enter__(self) -> NoLive:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, _: str) -> None:
        return None
