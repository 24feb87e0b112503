"""The ``placewatch`` command: ``main`` (every command), ``audit`` and ``bench`` sub-commands,
and ``support`` (options, settings, console and progress bars every command shares)."""

from streams.cli.main import main

__all__ = ["main"]
