"""Event sources for embedded mode: JSON-lines files (optionally gzipped) and the simulator."""

from __future__ import annotations

import gzip
import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from detectors.events import MAX_EVENT_BYTES, OversizedLine
from simulator import SCENARIOS, Simulation
from streams.errors import InputError

__all__ = ["check_inputs", "count_lines", "file_events", "paced"]

_READ_LIMIT = MAX_EVENT_BYTES + 1
"""A line is read at most this far: the limit and its newline. Longer is over the limit."""
_CHUNK = 1 << 20


def _bounded_lines(handle: BinaryIO) -> Iterator[bytes]:
    """Lines of ``handle``, none read whole past the event limit: a longer line is consumed in
    chunks, hashed and counted, and stands as an :class:`OversizedLine` of its first bytes."""
    while True:
        line = handle.readline(_READ_LIMIT)
        if not line:
            return
        if len(line) < _READ_LIMIT or line.endswith(b"\n"):
            yield line
            continue
        digest = hashlib.sha256(line)
        length = len(line)
        head = line[:OversizedLine.KEEP]
        while not line.endswith(b"\n"):
            line = handle.readline(_CHUNK)
            if not line:
                break
            body = line[:-1] if line.endswith(b"\n") else line
            digest.update(body)
            length += len(body)
        yield OversizedLine(head, length, digest.hexdigest())


def _open(path: Path) -> Iterator[bytes]:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                yield from _bounded_lines(handle)  # type: ignore[arg-type]
        else:
            with path.open("rb") as handle:
                yield from _bounded_lines(handle)
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
            raw = line if isinstance(line, OversizedLine) else (
                line[:-1] if line.endswith(b"\n") else line)
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
