"""The one protocol of the core's detectors: what the core tells them, what they answer.

A *detector* here is one finding the core can raise: it owns one or more alert kinds
(:class:`~detectors.alerts.AlertKind`), keeps its own state, and answers with alert *edges*:
:class:`Fire` to open an alert, :class:`Resolve` to close one. The core
(:class:`~detectors.pipeline.AuditCore`) builds every detector listed in
:data:`detectors.registry.DETECTORS` from the one :class:`~detectors.config.CoreConfig`, and
owns what they share: the group ledger (per-group counts, :mod:`detectors.groups`), the
alert book, the same-population merging (:mod:`detectors.coincidence`), the false-alarm budget
and the effects queue. Adding a detector is one module with a :class:`CoreDetector` subclass
plus one line in the registry; the shared contract tests (``tests/detectors``) then run it.

The hooks, each optional (the core calls a hook only on detectors that define it, so a
detector without per-event work costs the event path nothing):

- :meth:`CoreDetector.on_placement`: every new placement, after the ledger counted it, with
  the groups it belongs to. May answer edges (an expired override is found on its event).
- :meth:`CoreDetector.on_outcome`: every outcome joined to its placement, with its forecast
  errors.
- :meth:`CoreDetector.evaluate`: every ``evaluate_every`` decoded events, after the core set
  the family threshold. Its edges are applied one by one as they are yielded, so a detector
  that looks at the alert book sees its own earlier edges.

Edges the core refuses are harmless: a :class:`Fire` of an alert already open and a
:class:`Resolve` of one that is not open are ignored, so a detector need not mirror the book.

A toy detector (what the contract tests also build)::

    >>> from detectors.alerts import AlertKind
    >>> class Busy(CoreDetector):
    ...     '''Fires once a group has seen 3 placements; resolves at 6.'''
    ...     KIND = AlertKind("busy", "PlacewatchBusy", "warning")
    ...     kinds = (KIND,)
    ...     def evaluate(self, core, where):
    ...         for attribute, table in core.ledger.groups.items():
    ...             for name, stats in table.items():
    ...                 key = ("busy", attribute, name, "decisions")
    ...                 if stats.decisions >= 6:
    ...                     yield Resolve(key, stats.decisions, "quiet again")
    ...                 elif stats.decisions >= 3:
    ...                     yield Fire(key, self.KIND.firing(key, where, value=stats.decisions,
    ...                                                      reference=3, summary="busy"))
    >>> Busy.hooks()
    ('evaluate',)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

from detectors.alerts import Alert, AlertBook, AlertKey, AlertKind, Where

if TYPE_CHECKING:
    from detectors.config import CoreConfig
    from detectors.events import Outcome, Placement
    from detectors.groups import EquityLedger, GroupStats

__all__ = ["CoreDetector", "CoreView", "Edge", "Fire", "Resolve", "Statistic"]


@dataclass(frozen=True, slots=True)
class Fire:
    """Open the alert ``key`` with its firing edge (ignored while it is open)."""

    key: AlertKey
    alert: Alert


@dataclass(frozen=True, slots=True)
class Resolve:
    """Close the alert ``key`` (ignored unless open): its value now, and why in words."""

    key: AlertKey
    value: float
    why: str


Edge = Fire | Resolve


@dataclass(frozen=True, slots=True)
class Statistic:
    """One sequential statistic now, for ``placewatch_drift_statistic``: ``phase`` is
    ``alarm`` (the test that raises the alert) or ``recovery`` (the one that resolves it)."""

    watch: str
    attribute: str
    group: str
    metric: str
    phase: str
    value: float


class CoreView(Protocol):
    """What a detector may read of the core (read it, never change it)."""

    @property
    def config(self) -> CoreConfig: ...

    @property
    def ledger(self) -> EquityLedger: ...

    @property
    def alert_book(self) -> AlertBook: ...

    @property
    def family_threshold(self) -> float:
        """The CUSUM threshold of this evaluation: the false-alarm budget shared by every
        detector's :attr:`CoreDetector.watches`."""
        ...

    @property
    def watermark(self) -> float:
        """Event time (Unix seconds) the stream has reached."""
        ...

    @property
    def placements(self) -> int: ...

    @property
    def placed_wait(self) -> tuple[int, float] | None:
        """In :meth:`CoreDetector.on_placement`: the placement's job priority and queue wait
        when it is a ``place`` decision stating both, with a preempted job's wait counted
        from its preemption (:mod:`detectors.requeue`); None otherwise."""
        ...


class CoreDetector:
    """Base of every detector the core runs; subclasses set :attr:`kinds` and override the
    hooks they need. Construction takes the core's configuration and validates what it reads
    of it (a bad value is a ``ValueError`` naming the key)."""

    kinds: ClassVar[tuple[AlertKind, ...]] = ()
    """The alert kinds this detector raises (each kind belongs to one detector)."""

    def __init__(self, config: CoreConfig) -> None:
        self.config = config

    @property
    def watches(self) -> int:
        """Sequential tests that can alarm now (each side of a two-sided test counts; a
        watch still learning its reference cannot alarm and is not counted): the family
        false-alarm budget is spread over them."""
        return 0

    def on_placement(self, event: Placement, groups: list[GroupStats], where: Where,
                     core: CoreView) -> Iterable[Edge] | None:
        """A new placement (the ledger has counted it in ``groups``)."""
        return None

    def on_outcome(self, groups: list[GroupStats], placement: Placement, outcome: Outcome,
                   residuals: list[tuple[str, float]]) -> None:
        """An outcome joined to its placement; ``residuals`` are its forecast errors,
        ``(quantity, log(actual / predicted))``, where both are known and positive."""

    def evaluate(self, core: CoreView, where: Where) -> Iterator[Edge]:
        """A batch closed; ``where`` is the latest placement, which periodic findings are
        reported on."""
        return iter(())

    def still_alarmed(self, key: AlertKey, ledger: EquityLedger) -> bool:
        """Whether the condition behind ``key`` (one of this detector's alerts) still holds;
        the core asks when an alert its group was merged into resolves
        (:mod:`detectors.coincidence`). A detector that re-tests every evaluation answers
        False: its next evaluation fires again if it must."""
        return False

    def statistics(self, ledger: EquityLedger) -> Iterable[Statistic]:
        """Its sequential statistics now (for the metrics; none by default)."""
        return ()

    def summary(self) -> dict[str, object]:
        """Sections this detector adds to ``summary.json`` (none by default)."""
        return {}

    def counters(self) -> dict[str, int]:
        """Monotonic counts it keeps for the metrics, by name (none by default; a name is
        owned by one detector)."""
        return {}

    @classmethod
    def hooks(cls) -> tuple[str, ...]:
        """The per-event and per-batch hooks this class defines (the core calls only these)."""
        return tuple(name for name in ("on_placement", "on_outcome", "evaluate")
                     if getattr(cls, name) is not getattr(CoreDetector, name))
