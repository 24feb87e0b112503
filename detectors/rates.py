"""The rates placewatch tracks per group, each described once.

A :class:`RateSpec` says how a rate is counted, which direction hurts the group, the change
its drift detector is designed to find, and the words and units its alerts use. The ledger,
the drift detector, the alert wording, the summary, the metrics and the benchmarks read this
table; none of them restates it.

>>> spec = RATE_BY_NAME["queue_rate"]
>>> spec.words, spec.verb, spec.design_factor, spec.counted_over
('queueing rate', 'rose', 1.5, 'decisions')
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["RATES", "RATE_BY_NAME", "RATE_METRICS", "RateSpec"]


@dataclass(frozen=True, slots=True)
class RateSpec:
    """One tracked rate: ``numerator / denominator`` of a group's counters."""

    name: str
    """Metric name in alerts, ``summary.json`` and the ``metric`` label."""
    words: str
    """What it is, in an alert sentence ("cheap-tier share")."""
    adverse: str
    """Which direction hurts the group: ``fall`` or ``rise``."""
    design_factor: float
    """The drift detector's CUSUM is tuned to the rate becoming ``factor ×`` expected."""
    numerator: str
    denominator: str
    """:class:`~detectors.groups.GroupStats` counters the rate is made of."""
    support: str
    """What the denominator counts, in words ("placements stating a tier")."""
    counted_over: str
    """The coarse event kind the denominator counts: ``decisions``, ``placements`` or
    ``outcomes`` (how detection delays are measured)."""
    _get: Callable[[Any], tuple[int, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.adverse not in ("fall", "rise"):
            raise ValueError(f"adverse: must be 'fall' or 'rise', got {self.adverse!r}")
        if (self.design_factor < 1) != (self.adverse == "fall") or self.design_factor <= 0:
            raise ValueError(f"design_factor: must be in (0, 1) for a fall and > 1 for a "
                             f"rise, got {self.design_factor!r}")
        if self.counted_over not in ("decisions", "placements", "outcomes"):
            raise ValueError(f"counted_over: must be decisions, placements or outcomes, got "
                             f"{self.counted_over!r}")
        object.__setattr__(self, "_get", operator.attrgetter(self.numerator, self.denominator))

    @property
    def verb(self) -> str:
        """How an adverse change is said: ``fell`` or ``rose``."""
        return "fell" if self.adverse == "fall" else "rose"

    def counts(self, stats: Any) -> tuple[int, int]:
        """``(numerator, denominator)`` from a group's counters."""
        return self._get(stats)

    def shortfall(self, observed: float, expected: float) -> float:
        """How much worse than expected ``observed`` is, whichever direction is worse."""
        return expected - observed if self.adverse == "fall" else observed - expected


RATES: Final = (
    RateSpec("preferred_rate", "cheap-tier share", "fall", 0.7, "preferred", "tiered",
             "placements", "placements"),
    RateSpec("preferred_rate_high_priority", "cheap-tier share of its high-priority jobs",
             "fall", 0.7, "hp_preferred", "hp_tiered", "high-priority placements",
             "placements"),
    RateSpec("queue_rate", "queueing rate", "rise", 1.5, "queued", "decisions", "decisions",
             "decisions"),
    RateSpec("reject_rate", "rejection rate", "rise", 3.0, "rejected", "decisions",
             "decisions", "decisions"),
    RateSpec("preemption_rate", "preemption rate", "rise", 3.0, "preempted", "decisions",
             "decisions", "decisions"),
    RateSpec("deadline_miss_rate", "deadline-miss rate", "rise", 3.0, "deadline_missed",
             "deadline_n", "outcomes", "outcomes"),
    RateSpec("old_hardware_rate", "share of old hardware", "rise", 2.0, "hw_old", "hw_n",
             "placements", "placements"),
)
"""Every tracked rate. The two ``preferred_rate`` ones are favourable (a fall hurts);
``preferred_rate_high_priority`` is the cheap-tier share among the jobs that most deserve it
(priority at or above ``deserving_priority``): its parity gap is the equal-opportunity gap.

Rare adverse rates (rejections, preemptions, deadline misses) get larger design shifts: their
exposure drifts slowly (how many of a group's jobs run on spot, how loaded the cluster is), a
dependence longer than a batch that would otherwise show up as false alarms on a fair stream.
"""

RATE_BY_NAME: Final = {spec.name: spec for spec in RATES}
RATE_METRICS: Final = tuple(spec.name for spec in RATES)
"""The rates' names, in the table's order."""
