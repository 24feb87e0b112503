"""River's drift detectors in place of placewatch's CUSUM, on the same standardised contrast.

With ``drift_detector = "adwin"`` or ``"page_hinkley"`` (River's defaults, or some of its
settings: ``"page_hinkley:threshold=20,delta=0.5"``, :func:`parse_detector`) each equity-drift
watch feeds River's detector, instead of its CUSUM, one value per batch: the batch's deviation
from the rate its reference ratio expects given the other groups, divided by its standard
deviation under the learned overdispersion ``φ``, and signed so that a change against the group
is positive. The contrast, the reference, ``φ`` and the amplification test are the same as with
the CUSUM; only the sequential test differs. River's thresholds are its own, so the false-alarm
budget (``false_alarms_per_million``) does not apply to it: ``placewatch bench detection``
measures what it gives.

A River signal is judged by the mean of the latest :data:`RECENT` values, its *level*:

- **ADWIN** (either direction): an alarm when it signals and the level is adverse (above
  :data:`ADVERSE_LEVEL` and above the mean of everything it saw since it last started); the
  alarm ends when a fresh ADWIN, started at the alarm, signals with the level below the mean
  it saw.
- **Page-Hinkley**: ``mode="up"`` raises the alarm when the level is also above
  :data:`ADVERSE_LEVEL` (a group coming back from a favourable spell is not adverse); a fresh
  ``mode="down"`` one, started at the alarm, ends it.

River is imported only when such a watch is made, so the default event path never loads it.

>>> cycle = RiverCycle("page_hinkley")
>>> any(cycle.test(0.0) for _ in range(100))            # in control
False
>>> next(i for i in range(100) if cycle.test(4.0))      # batches of a shift until the alarm
13
>>> cycle.start_alarm()
>>> any(cycle.recover(4.0) for _ in range(50))          # the shift holds
False
>>> next(i for i in range(100) if cycle.recover(0.0)) > 0, cycle.alarmed   # and reverts
(True, False)
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["RIVER_DETECTORS", "RiverCycle", "parse_detector"]

RIVER_DETECTORS: Final = ("adwin", "page_hinkley")
_SETTINGS: Final[dict[str, dict[str, tuple[type, float, float, bool]]]] = {
    "adwin": {"delta": (float, 0.0, 1.0, False), "grace_period": (int, 1, 1e9, True),
              "min_window_length": (int, 1, 1e9, True)},
    "page_hinkley": {"threshold": (float, 0.0, 1e9, False), "delta": (float, 0.0, 1e9, True),
                     "alpha": (float, 0.0, 1.0, False), "min_instances": (int, 1, 1e9, True)},
}
"""River's own settings that a ``drift_detector`` spec may give: (type, low, high, whether
low itself is allowed); high is allowed."""


def parse_detector(spec: str) -> tuple[str, dict[str, Any]]:
    """``KIND`` or ``KIND:NAME=VALUE,...`` as the kind and River's keyword arguments; a
    ValueError names what is wrong.

    >>> parse_detector("page_hinkley:threshold=20,delta=0.5")
    ('page_hinkley', {'threshold': 20.0, 'delta': 0.5})
    >>> parse_detector("adwin:delta=2")
    Traceback (most recent call last):
    ...
    ValueError: adwin's delta must be in (0.0, 1], got '2'
    """
    kind, colon, rest = spec.partition(":")
    if kind not in RIVER_DETECTORS:
        raise ValueError(f"kind must be one of {', '.join(RIVER_DETECTORS)}, got {kind!r}")
    if colon and not rest.strip():
        raise ValueError(f"nothing after {kind}: give NAME=VALUE settings, or no colon")
    params: dict[str, Any] = {}
    for item in (part.strip() for part in rest.split(",")) if colon else ():
        name, _, text = (piece.strip() for piece in item.partition("="))
        allowed = _SETTINGS[kind]
        if name not in allowed:
            raise ValueError(f"{kind} takes {', '.join(allowed)}, got {name!r}")
        if name in params:
            raise ValueError(f"{kind}'s {name} is given twice")
        kind_of, low, high, low_allowed = allowed[name]
        try:
            value = kind_of(text)
        except ValueError:
            what = "an integer" if kind_of is int else "a number"
            raise ValueError(f"{kind}'s {name} must be {what}, got {text!r}") from None
        if not ((low <= value if low_allowed else low < value) and value <= high):
            span = f"{'[' if low_allowed else '('}{low}, {high:g}]"
            raise ValueError(f"{kind}'s {name} must be in {span}, got {text!r}")
        params[name] = value
    return kind, params
RECENT: Final = 8
"""Latest values whose mean is the level a River signal is judged by."""
ADVERSE_LEVEL: Final = 0.5
"""A level above this leans against the group (in control the level's standard deviation is
at most ``1/sqrt(RECENT)``, about 0.35)."""


def _detector(kind: str, up: bool, params: dict[str, Any]) -> Any:
    from river import drift  # deferred: only a configured River watch needs River

    if kind == "adwin":
        # one value per batch: test every update (its default, clock=32, is for event streams)
        return drift.ADWIN(clock=1, **params)  # type: ignore[no-untyped-call]
    return drift.PageHinkley(mode="up" if up else "down", **params)


class RiverCycle:
    """The alarm / recovery cycle of :class:`~detectors.alarm.AlarmCycle`, run by River."""

    __slots__ = ("_alarm", "_back", "_n", "_params", "_recent", "_sum", "alarmed", "kind")

    takes = "z"
    """It is fed the standardised contrast (the CUSUM takes log-likelihood ratios)."""

    def __init__(self, spec: str) -> None:
        """``spec``: ``adwin`` or ``page_hinkley``, with River's defaults, or with some of
        its settings, ``page_hinkley:threshold=20,delta=0.5`` (:func:`parse_detector`)."""
        self.kind, self._params = parse_detector(spec)
        self._alarm = _detector(self.kind, True, self._params)
        self._back: Any = None
        self.alarmed = False
        self._recent: list[float] = []
        """The latest :data:`RECENT` values: the level a signal is judged by."""
        self._sum = 0.0
        self._n = 0
        """Values the current River detector has seen (River starts afresh after a signal)."""

    @property
    def threshold(self) -> float:
        """River's detectors carry their own thresholds; the family threshold is ignored."""
        return float("nan")

    @threshold.setter
    def threshold(self, value: float) -> None:
        return None

    @property
    def statistic(self) -> float:
        """The level: the mean of the latest :data:`RECENT` values (judged against
        :data:`ADVERSE_LEVEL`; River's own statistics are internal to it)."""
        return self._level()

    @property
    def in_control(self) -> bool:
        """Not alarmed, and the latest values do not lean against the group (their level is at
        most :data:`ADVERSE_LEVEL`)."""
        return not self.alarmed and self._level() <= ADVERSE_LEVEL

    def _level(self) -> float:
        return sum(self._recent) / len(self._recent) if self._recent else 0.0

    def _see(self, z: float) -> None:
        self._recent.append(z)
        if len(self._recent) > RECENT:
            del self._recent[0]
        self._sum += z
        self._n += 1

    def _signal(self) -> tuple[float, float]:
        """At a River signal: the recent level and the mean of everything this detector saw
        (River resets it on the next update, so the tally starts afresh too)."""
        overall = self._sum / self._n
        self._sum, self._n = 0.0, 0
        return self._level(), overall

    def test(self, z: float) -> bool:
        """In control: one batch's adverse standardised deviation; True when it raises the
        alarm: River signalled and the recent level is adverse (above :data:`ADVERSE_LEVEL`
        and, for ADWIN, which signals either way, above the mean before it)."""
        if self.alarmed:
            raise RuntimeError("test() while alarmed: call recover()")
        self._see(z)
        self._alarm.update(z)
        if not self._alarm.drift_detected:
            return False
        recent, overall = self._signal()
        if recent <= ADVERSE_LEVEL or (self.kind == "adwin" and recent <= overall):
            return False  # a change in the group's favour, or back from one
        self.alarmed = True
        return True

    def start_alarm(self) -> None:
        """Begin the alarmed phase: a fresh detector watches for the way back."""
        self._back = _detector(self.kind, False, self._params)
        self._sum, self._n = 0.0, 0

    def recover(self, z: float) -> bool:
        """Alarmed: one batch's value; True when the alarm ends: River signalled a fall
        (Page-Hinkley ``mode="down"``; for ADWIN, a recent level below the alarmed mean)."""
        if not self.alarmed:
            raise RuntimeError("recover() while in control: call test()")
        if self._back is None:
            self.start_alarm()
        self._see(z)
        self._back.update(z)
        if not self._back.drift_detected:
            return False
        recent, overall = self._signal()
        if self.kind == "adwin" and recent >= overall:
            return False
        self.alarmed = False
        self._alarm = _detector(self.kind, True, self._params)
        self._back = None
        return True
