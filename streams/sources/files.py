"""Event sources for embedded mode: JSON-lines files (optionally gzipped) and the simulator."""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from simulator import SCENARIOS, Simulation
from streams.errors import InputError

__all__ = ["check_inputs", "count_lines", "file_events", "paced"]


def _open(path: Path) -> Iterator[bytes]:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                yield from handle
        else:
            with path.open("rb") as handle:
                yield from handle
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc


def check_inputs(paths: list[Path]) -> None:
    """Fail before any work when an input is missing or unreadable."""
    for path in paths:
        if not path.is_file():
            raise InputError(f"no such file: {path}")
        try:
            with path.open("rb") as handle:
                handle.read(1)
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc}") from exc


def file_events(paths: list[Path]) -> Iterator[tuple[str, bytes]]:
    """``(where, raw)`` for every line of every file, in order.

    Only the line's ``\\n`` is removed, so a rejected line's bytes are kept exactly. Empty
    lines (nothing between two newlines) carry no event and are skipped; a line of only
    spaces is an event, and is rejected like any other malformed one.
    """
    check_inputs(paths)
    for path in paths:
        for number, line in enumerate(_open(path), start=1):
            raw = line[:-1] if line.endswith(b"\n") else line
            if raw:
                yield f"{path.name}:{number}", raw


def count_lines(paths: list[Path]) -> int | None:
    """Lines in plain files (for a progress bar); None when a file is compressed."""
    total = 0
    for path in paths:
        if path.name.endswith(".gz") or not path.is_file():
            return None
        with path.open("rb") as handle:
            total += sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
    return total


def paced(scenario: str, seed: int, events: int | None, speedup: float,
          clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep,
          revert_at: int | None = None) -> Iterator[tuple[str, bytes]]:
    """The simulator as a live source: one simulated second every ``1/speedup`` seconds.

    A bad ``revert_at`` is a ``ValueError`` here, before the first event."""
    sim = Simulation(SCENARIOS[scenario], events, seed, revert_at=revert_at)
    return _paced(sim, speedup, clock, sleep)


def _paced(sim: Simulation, speedup: float, clock: Callable[[], float],
           sleep: Callable[[float], None]) -> Iterator[tuple[str, bytes]]:
    start = clock()
    for index, raw in enumerate(sim):
        ahead = sim.now / speedup - (clock() - start)
        if ahead > 0:
            sleep(min(ahead, 1.0))
        yield f"simulator:{index}", raw
